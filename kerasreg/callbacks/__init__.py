"""Training callbacks."""

from kerasreg.callbacks.schedule import ScheduleCallback

__all__ = ["ScheduleCallback"]
