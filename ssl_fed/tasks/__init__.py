"""Pretext tasks, one per file, registered by name."""

from ssl_fed.tasks import contrastive, joint, rotation
from ssl_fed.tasks.base import TASKS, PretextTask, build_task, register_task
from ssl_fed.tasks.units import UnitPlan, form_units, plan_units

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
