"""An emulated benchmark of the real harness: per-instance datasets of real evaluations, and emulators fitted on them.

    python -m runs.emulator build --suite synthetic-v1 --jobs 2     # design runs -> dataset -> emulators
    python -m runs.emulator report --json                           # fidelity per instance
    python -m runs.compare --suite synthetic-v1 --objective emulated     # a whole comparison in minutes

* :mod:`.dataset`: the datasets (``surrogate/emulators/<suite>.parquet``);
* :mod:`.model`: the per-instance emulator (LightGBM regression + feasibility classifier), its fidelity on
  held-out rows, the container (``surrogate/emulators/<suite>.emulator``) and its checks;
* :mod:`.problem`: :class:`EmulatedProblem` (the ``Problem`` interface), gymnasium tasks for meta-training;
* :mod:`.fidelity`: ranking fidelity (emulated vs real comparisons), the model-family measurement.

See ``docs/reference/emulator.md``.
"""

from surrogate.emulator.dataset import DATA_DIR, EmulatorError, dataset_path, read_dataset
from surrogate.emulator.model import EmulatorFile, InstanceEmulator, fit_instance, save
from surrogate.emulator.problem import EmulatedProblem, EpisodeSampler, emulator_path, load_problem, make_env, suite_problems

__all__ = ["DATA_DIR", "EmulatedProblem", "EmulatorError", "EmulatorFile", "EpisodeSampler", "InstanceEmulator",
           "dataset_path", "emulator_path", "fit_instance", "load_problem", "make_env", "read_dataset", "save",
           "suite_problems"]
