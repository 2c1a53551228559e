"""Pretext tasks, one per file, registered by name.

Every module in this package is imported here, so a new task is one file dropped into
``ssl_fed/tasks/`` (plus its ``configs/task/<name>.yaml``); tasks kept elsewhere are plugins
(:mod:`ssl_fed.plugins`), imported here too.
"""

from ssl_fed.plugins import import_package_modules, import_plugins
from ssl_fed.tasks import contrastive, joint, rotation
from ssl_fed.tasks.base import TASKS, PretextTask, build_task, register_task
from ssl_fed.tasks.units import UnitPlan, form_units, plan_units

import_package_modules(__name__, __path__)
import_plugins()

__all__ = [
    "TASKS",
    "PretextTask",
    "UnitPlan",
    "build_task",
    "contrastive",
    "form_units",
    "joint",
    "plan_units",
    "register_task",
    "rotation",
]
