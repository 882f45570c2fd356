"""Search spaces: which recipe fields a search varies, and over what: data, not code.

A space is a TOML file; built-in ones ship in ``cifarlab/spaces/<name>.toml``, beside the
recipes. Each entry is a recipe field, dotted as ``--set`` takes it, with one distribution::

    description = "what this space is for"           # optional
    "optim.lr" = { log_uniform = [1e-4, 3e-3] }       # log-uniform on [low, high], 0 < low
    "model.options.dropout" = { uniform = [0.0, 0.6] }
    "train.epochs" = { int = [10, 30] }               # every integer in [low, high]
    "train.batch_size" = { choice = [32, 64, 128] }   # one of these values

A space is checked against the recipe it searches, before anything trains: every field must
be one the recipe has (``model.options.*``: an option its model takes), the bounds must be
ordered numbers of the field's type, and the recipe must stay valid at each end of every
range and at every choice (its own checks, e.g. ``optim.lr > 0``). What is wrong comes back
as one line naming the file and the entry (TuneError: exit 2 at the command line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cifarlab.errors import CifarlabError
from cifarlab.models import create_model, model_defaults
from cifarlab.recipe import Recipe, load_recipe, read_named_toml
from cifarlab.tune import TuneError

DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
# Fields (or sections, ending in ".") a search may not vary, and why.
NOT_SEARCHABLE = {
    "seed": "each trial's seed is tune's (see --vary-seed)",
    "name": "it is text",
    "description": "it is text",
    "data.": "the validation split is what every trial is measured on; fix data.* with --set",
    "eval.": "it changes only the test evaluation, never the objective (validation accuracy)",
    "system.device": "it is where a trial runs, not what it trains (tune's --device)",
    "system.threads": "it is how a trial runs, not what it trains",
}
OPTIONS = "model.options."


@dataclass(frozen=True)
class Param:
    """One entry: a recipe field and its distribution (bounds, or the choices)."""

    field: str  # dotted recipe field, e.g. "optim.lr"
    kind: str  # one of DISTRIBUTIONS
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The entry as written in the file: ``{"log_uniform": [low, high]}``."""
        return {self.kind: list(self.choices) if self.kind == "choice" else [self.low, self.high]}

    def distribution(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(_show(c) for c in self.choices)
        kind = {"log_uniform": "log-uniform", "uniform": "uniform", "int": "integers"}[self.kind]
        return f"{kind} in [{_show(self.low)}, {_show(self.high)}]"

    def contains(self, value: Any) -> bool:
        """``value`` is one this entry can sample (trial 0 starts from the recipe's own)."""
        if self.kind == "choice":
            return any(_same(value, c) for c in self.choices)
        if not _is_number(value):
            return False
        if self.kind == "int" and value != int(value):
            return False
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    params: tuple[Param, ...]
    where: str = ""  # the file (or built-in name) it was read from, for messages

    def fields(self) -> list[str]:
        return [p.field for p in self.params]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "params": {p.field: p.to_json() for p in self.params}}


def builtin_spaces() -> list[str]:
    """Names of the spaces shipped with cifarlab."""
    folder = resources.files("cifarlab") / "spaces"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_space(name_or_path: str | Path, recipe: Recipe | dict) -> SearchSpace:
    """The space of a built-in name or a TOML file, checked against ``recipe`` (the resolved
    starting recipe of the search)."""
    try:
        raw, where = read_named_toml(str(name_or_path), "space", "spaces", builtin_spaces())
    except CifarlabError as exc:
        raise TuneError(str(exc)) from None
    path = Path(str(name_or_path))
    name = path.stem if path.suffix == ".toml" or "/" in str(name_or_path) else str(name_or_path)
    return space_from_dict(raw, recipe, name=name, where=where)


def space_from_dict(
    raw: dict[str, Any], recipe: Recipe | dict, *, name: str = "space", where: str = "space"
) -> SearchSpace:
    """A space from its parsed TOML (or the ``params`` of a stored tune.json), checked."""
    base = load_recipe(recipe).to_dict() if isinstance(recipe, dict) else recipe.to_dict()
    raw = dict(raw)
    description = raw.pop("description", "")
    if not isinstance(description, str):
        raise TuneError(f"{where}: description: expected a string, got {description!r}")
    entries = _flatten(raw, "", where)
    if not entries:
        raise TuneError(
            f"{where}: no entries; add one per recipe field to search, e.g. "
            f'"optim.lr" = {{ log_uniform = [1e-4, 3e-3] }}'
        )
    params = tuple(_param(field, entry, base, where) for field, entry in entries)
    return SearchSpace(name=name, description=description, params=params, where=where)


def _flatten(raw: dict[str, Any], prefix: str, where: str) -> list[tuple[str, Any]]:
    """(field, entry) pairs: ``"optim.lr" = {...}`` and ``[optim] lr = {...}`` alike."""
    out = []
    for key, value in raw.items():
        field = prefix + key
        if isinstance(value, dict) and value and not set(value) & set(DISTRIBUTIONS):
            if all(isinstance(v, dict) for v in value.values()):
                out += _flatten(value, field + ".", where)
                continue
        out.append((field, value))
    return out


def _param(field: str, entry: Any, base: dict[str, Any], where: str) -> Param:
    at = f"{where}: entry {field!r}"
    if not isinstance(entry, dict) or len(entry) != 1:
        raise TuneError(
            f"{at}: expected one distribution, e.g. {{ log_uniform = [1e-4, 3e-3] }}; "
            f"got {_short(entry)}"
        )
    ((kind, spec),) = entry.items()
    if kind not in DISTRIBUTIONS:
        raise TuneError(
            f"{at}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}"
        )
    current = _current(field, base, at)
    if kind == "choice":
        if not isinstance(spec, list) or len(spec) < 2:
            raise TuneError(f"{at}: choice needs a list of at least two values, got {_short(spec)}")
        if any(isinstance(c, (list, dict)) for c in spec):
            raise TuneError(f"{at}: choice values must be numbers, strings or booleans")
        if len({_key(c) for c in spec}) != len(spec):
            raise TuneError(f"{at}: choice lists a value twice ({_short(spec)})")
        param = Param(field, kind, choices=tuple(spec))
        _check_values(param, list(spec), base, at)
        return param
    if (
        not isinstance(spec, list)
        or len(spec) != 2
        or not all(_is_number(v) and math.isfinite(v) for v in spec)
    ):
        raise TuneError(f"{at}: {kind} needs [low, high], two finite numbers; got {_short(spec)}")
    low, high = spec
    if not low < high:
        raise TuneError(f"{at}: {kind} needs low < high, got [{_show(low)}, {_show(high)}]")
    if kind == "log_uniform" and low <= 0:
        raise TuneError(
            f"{at}: log_uniform needs 0 < low (a log scale has no 0), got [{_show(low)}, "
            f"{_show(high)}]; use uniform to include 0"
        )
    if kind == "int":
        if not all(isinstance(v, int) for v in spec):
            raise TuneError(f"{at}: int needs integer bounds, got {_short(spec)}")
    elif isinstance(current, int) and not isinstance(current, bool):
        raise TuneError(
            f"{at}: {field} takes integers and {kind} draws real numbers; use int or choice"
        )
    param = Param(field, kind, low=low, high=high)
    probes = [low, high] if kind == "int" else [low, high, (low + high) / 2]
    _check_values(param, probes, base, at)
    return param


def _current(field: str, base: dict[str, Any], at: str) -> Any:
    """The starting recipe's value of ``field`` (a model option's default when unset);
    an unknown field is refused here."""
    for name, why in NOT_SEARCHABLE.items():
        if field == name or (name.endswith(".") and field.startswith(name)):
            raise TuneError(f"{at}: {field} cannot be searched ({why})")
    if field.startswith(OPTIONS):
        option = field[len(OPTIONS) :]
        options = base["model"]["options"]
        if option in options:
            return options[option]
        defaults = model_defaults(base["model"]["name"])
        return defaults.get(option)  # unknown options are refused by create_model below
    node: Any = base
    parts = field.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else ""
            section = ".".join(parts[:i]) or "recipe"
            raise TuneError(
                f"{at}: unknown field: the recipe has no {field}"
                + (f" ({section} holds: {known})" if known else "")
            )
        node = node[part]
    if isinstance(node, (dict, list)):
        what = "a section" if isinstance(node, dict) else "a list"
        raise TuneError(f"{at}: {field} is {what}; a search varies single values")
    return node


def _check_values(param: Param, values: list[Any], base: dict[str, Any], at: str) -> None:
    """The recipe (and, for model fields, the model) must accept every probed value."""
    for value in values:
        try:
            recipe = load_recipe(base, {param.field: value})
            if param.field.startswith("model."):
                create_model(recipe.model.name, **recipe.model.options)
        except (CifarlabError, TypeError, ValueError) as exc:  # TypeError: a model's own checks
            option = param.field[len(OPTIONS) :] if param.field.startswith(OPTIONS) else None
            model = base["model"]["name"]
            if option is not None and "unexpected keyword" in str(exc):
                takes = ", ".join(sorted(model_defaults(model))) or "no named options"
                raise TuneError(
                    f"{at}: unknown field: model {model!r} has no option {option!r} "
                    f"(it takes: {takes})"
                ) from None
            raise TuneError(f"{at}: {_show(value)} is not a valid value ({exc})") from None


def start_values(space: SearchSpace, recipe: Recipe) -> dict[str, Any]:
    """The starting recipe's own value of each field that lies inside its entry's range:
    the parameters of trial 0, which trains the starting recipe itself."""
    base = recipe.to_dict()
    out = {}
    for p in space.params:
        value = _current(p.field, base, "")
        if value is not None and p.contains(value):
            out[p.field] = value
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _key(v: Any) -> tuple[str, Any]:
    return (type(v).__name__, v)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _show(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"
