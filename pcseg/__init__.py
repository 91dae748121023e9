"""pcseg: 3D point-cloud instance segmentation of indoor scenes (ScanNet-style)."""
from .errors import ConfigError, DataError, PcsegError
from .runtime import set_threads
from .structures import Batch, InstanceSet, MemberInstances, Prediction, Scene, SegGroup

__version__ = "0.1.0"
__all__ = ["Batch", "ConfigError", "DataError", "InstanceSet", "MemberInstances", "PcsegError", "Prediction", "Scene", "SegGroup", "__version__", "set_threads"]
