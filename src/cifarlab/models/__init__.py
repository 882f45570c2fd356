"""Model families and the registry (``create_model``, ``list_models``)."""

from cifarlab.models.registry import (
    ROLES,
    CifarModel,
    ModelProtocol,
    check_model,
    create_model,
    list_models,
    model_defaults,
    register_model,
)

# Every family registers its models on import; the registry itself never imports them
# (that would be a cycle: each family imports the registry).
from cifarlab.models import families  # noqa: E402, F401  (isort: skip)

__all__ = [
    "ROLES",
    "CifarModel",
    "ModelProtocol",
    "check_model",
    "create_model",
    "list_models",
    "model_defaults",
    "register_model",
    "count_parameters",
    "count_flops",
]


def count_parameters(model) -> int:
    """Trainable and frozen parameters together."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model, image_size: int = 32) -> int:
    """Forward FLOPs for one image (2 x multiply-accumulates), measured by torch's counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    return int(counter.get_total_flops())
