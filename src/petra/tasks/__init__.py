"""Tasks and the run behind `petra train`: a preset (`petra/configs/<name>.json`) gives each
task its `model`, `train` and `data` sections; `--set section.key=value` changes one value."""

from petra.tasks.run import PRESETS_DIR, TASKS, build_run, load_preset, run_task

__all__ = ["PRESETS_DIR", "TASKS", "build_run", "load_preset", "run_task"]
