"""DP-SGD over clipping units, calibration, and the site's privacy ledger."""

from ssl_fed.privacy.accounting import calibrate_noise, epsilon_for_history, make_accountant
from ssl_fed.privacy.dpsgd import DPSGDStep, PlainStep, PrivacyError, check_private_setup
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.privacy.ledger import (
    BudgetExceededError,
    BudgetRaiseError,
    LedgerError,
    PrivacyLedger,
)

__all__ = [
    "BudgetExceededError",
    "BudgetRaiseError",
    "DPSGDStep",
    "LedgerError",
    "PlainStep",
    "PrivacyError",
    "PrivacyLedger",
    "calibrate_noise",
    "check_private_setup",
    "epsilon_for_history",
    "make_accountant",
    "per_unit_gradients",
]
