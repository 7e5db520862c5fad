"""Problem instances and suites: what a searcher comparison replicates over (see ``docs/reference/instances.md``).

``load_suite("real-v1")`` reads a shipped suite (``instances/suites/*.toml``) or a user's file by path;
``find_instance(id)`` looks an instance up; ``Instance.default(universe)`` is the seed's protocol on any
universe. ``Problem.from_instance`` turns an instance into what a searcher optimises.
"""

from instances.instance import MIN_HOLDOUT_DAYS, Instance, InstanceError, data_dir
from instances.problem import Problem
from instances.suite import SUITES_DIR, Suite, find_instance, load_suite, shipped

__all__ = ["MIN_HOLDOUT_DAYS", "SUITES_DIR", "Instance", "InstanceError", "Problem", "Suite", "data_dir", "find_instance",
           "load_suite", "shipped"]
