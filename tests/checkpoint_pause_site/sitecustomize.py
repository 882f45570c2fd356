"""Run at the start of every Python process whose PYTHONPATH holds this folder (the tests
put it there: checkpoint_pause.environment): installs the checkpoint pause it names."""

import os
import sys

if os.environ.get("CIFARLAB_TEST_CHECKPOINT_PAUSE"):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import checkpoint_pause

    checkpoint_pause.install(os.environ[checkpoint_pause.ENV])
