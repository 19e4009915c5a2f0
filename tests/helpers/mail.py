"""A real SMTP server for the monitoring tests: aiosmtpd on 127.0.0.1 (a free port), optionally with
AUTH LOGIN/PLAIN checked against one user and password, keeping every message it accepts."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from helpers.servers import free_port


class _Handler:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=email.policy.default))
        return "250 Message accepted for delivery"


class Mailbox:
    """``with Mailbox(user=..., password=...) as box:`` then ``box.port``, ``box.messages``."""

    def __init__(self, user: str | None = None, password: str | None = None):
        self.user, self.password = user, password
        self.handler = _Handler()
        self.port = free_port()
        kwargs = {}
        if user is not None:
            # Loopback only, so AUTH without TLS is allowed here (aiosmtpd refuses it by default).
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.logins: list[tuple[str, bool]] = []

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        secret = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
        ok = login == self.user and secret == self.password
        self.logins.append((login, ok))
        return AuthResult(success=ok, handled=False)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
