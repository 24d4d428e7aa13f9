"""The gateway interface. Card data stays with the gateway: we only ever see a token and display details."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from billing.models import AttemptOutcome


@dataclass(frozen=True)
class SetupStart:
    redirect_url: str  # the gateway's hosted page
    reference: str  # the gateway's id for this signing session


@dataclass(frozen=True)
class CardDetails:
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    customer_ref: str | None = None


@dataclass(frozen=True)
class ChargeResult:
    outcome: AttemptOutcome
    reference: str | None
    message: str | None = None


class Gateway(abc.ABC):
    name: str

    @abc.abstractmethod
    def start_setup(self, session: Session, *, email: str, customer_ref: str | None, description: str,
                    return_url: str, cancel_url: str) -> SetupStart:
        """Open a hosted page where the customer authorises future off-session charges to a card."""

    @abc.abstractmethod
    def complete_setup(self, session: Session, reference: str, params: dict) -> CardDetails:
        """The card the customer authorised on the page opened by ``start_setup``.

        ``params`` are the query arguments the gateway sent the customer back with. Raises
        ``GatewayRefused`` when the setup did not complete or does not belong to ``reference``.
        """

    @abc.abstractmethod
    def charge(self, session: Session, *, card: CardDetails, amount: int, currency: str, idempotency_key: str,
               description: str, metadata: dict[str, str] | None = None) -> ChargeResult:
        """Charge a saved card off-session. Never raises for a decline: the outcome says what happened.

        ``unknown`` when the call may have charged without our hearing the answer (timeout, reset, 5xx);
        ``processing`` when the provider took the payment but has not settled it. ``metadata`` goes on the
        provider's payment so :meth:`find_charge` can find it without its id.
        """

    @abc.abstractmethod
    def find_charge(self, session: Session, *, reference: str | None, idempotency_key: str, card: CardDetails,
                    since: datetime) -> ChargeResult | None:
        """What became of a charge sent with ``idempotency_key`` (and ``reference`` when we heard it).

        None when the provider has no such payment (nothing was charged); an ``unknown`` outcome when the
        provider could not be asked.
        """

    @abc.abstractmethod
    def start_authentication(self, session: Session, reference: str, *, return_url: str,
                             payment_method: str | None = None) -> str:
        """The URL where the customer authenticates a payment that returned ``requires_action``.

        ``payment_method`` is the card the payment is confirmed with again (off-session recovery).
        """

    @abc.abstractmethod
    def confirm(self, session: Session, reference: str) -> ChargeResult:
        """The outcome of a payment after the customer came back from authenticating it."""

    # Some providers let a saved card's expiry change without capturing the card again.
    supports_expiry_update: bool = False

    def update_expiry(self, session: Session, card: CardDetails, exp_month: int, exp_year: int) -> CardDetails:
        """The same card with a new expiry (only when ``supports_expiry_update``)."""
        raise NotImplementedError(f"{self.name} cannot change a card's expiry")
