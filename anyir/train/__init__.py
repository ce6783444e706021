"""anyir.train: the distributed AnyIR trainer (one process, or DDP under torchrun).

``train(TrainConfig(...))`` runs one training job and returns its summary; see `anyir.train.trainer`
for the loop, `config` for every option and default, `checkpoint` for the on-disk layout and
`balance_control` for the adaptive-balance hook.
"""

from anyir.train.balance_control import BalanceController, BalanceSignals, StaticBalance
from anyir.train.config import ConfigError, TrainConfig, load_config
from anyir.train.errors import NonFiniteLossError, RunDirError, TrainSetupError
from anyir.train.trainer import train

__all__ = [
    "BalanceController",
    "BalanceSignals",
    "ConfigError",
    "NonFiniteLossError",
    "RunDirError",
    "StaticBalance",
    "TrainConfig",
    "TrainSetupError",
    "load_config",
    "train",
]
