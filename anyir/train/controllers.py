"""The index from balance strategy names to the controllers that drive them while training.

``anyir.data.balance.STRATEGIES`` is the grammar's registry (names, parameters, defaults); this
module is the training side of it: one factory per adaptive name. A static balance gets
:class:`~anyir.train.balance_control.StaticBalance`. ``tests/test_balance.py`` checks the two
registries name the same adaptive strategies.
"""

from __future__ import annotations

from collections.abc import Callable

from anyir.data.balance import BalanceSpec, parse_balance
from anyir.train.adaptive import make_adaptive
from anyir.train.balance_control import BalanceController, ControllerSetup, StaticBalance
from anyir.train.dro import make_dro
from anyir.train.progress import make_progress

ControllerFactory = Callable[[BalanceSpec, ControllerSetup], BalanceController]

CONTROLLERS: dict[str, ControllerFactory] = {
    "adaptive": make_adaptive,
    "progress": make_progress,
    "dro": make_dro,
}


def make_controller(spec: BalanceSpec | str, setup: ControllerSetup) -> BalanceController:
    """The controller of a balance spec: StaticBalance for static specs, else the registered factory."""
    spec = parse_balance(spec)
    if not spec.adaptive:
        return StaticBalance()
    return CONTROLLERS[spec.strategy](spec, setup)
