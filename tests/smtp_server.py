"""A real SMTP server (aiosmtpd) on 127.0.0.1 that receives the service's emails in tests.

Usage (in any test, sync or async; the server runs on its own thread and event loop, so
it answers while the test awaits, sleeps or waits for a worker):

    from tests.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401 (smtp_server)

    async def test_x(smtp_server, env):
        env.setenv("SMTP_URL", smtp_server.url)          # smtp://127.0.0.1:PORT
        reset_settings()                                 # (channel_for follows settings)
        ...                                              # make the service send
        [received] = await smtp_server.wait_for(1)       # the messages, parsed
        assert received.message["Subject"] == "支付成功"
        assert received.rcpt_tos == ["applicant@example.org"]
        text, html = received.body("plain"), received.body("html")
        [pdf] = received.attachments                     # EmailMessage parts
        pdf.get_filename(), pdf.get_content()            # (name, bytes)

Or build one with options, as a context manager (sync `with` or `async with`):

    with SmtpServer(auth=("user", "secret"), tls="starttls") as server:
        server.url              # smtp://user:secret@127.0.0.1:PORT?cafile=…
        server.messages         # list[ReceivedEmail], in the order received

Options (attributes; change them while it runs, e.g. to make it "come back"):
- `auth=(user, password)`: AUTH required before MAIL (PLAIN/LOGIN); wrong → 535.
- `tls="starttls"` offers STARTTLS (`require_starttls=True` refuses MAIL without it);
  `tls="implicit"` is SMTPS (TLS from the first byte, `url` is smtps://). The
  certificate is made per server for 127.0.0.1/localhost by a throwaway CA whose PEM
  is `server.cafile` (in the URL as `?cafile=`).
- `refuse="550 5.1.1 No such user"` answers that reply at `refuse_at` ("connect", "ehlo",
  "mail", "rcpt" (default) or "data") instead of going on; `refuse=None` accepts again.
  `refuse_recipients={"bad@example.org": "550 5.1.1 No such user"}` refuses only those.
- `SmtpServer(port=stopped.port)` starts again where a stopped server listened (a relay
  that was down and comes back); `refuse="421 …", refuse_at="connect"` then
  `server.refuse = None` does the same without a restart.
- `hang_at="connect"` never answers (not even the greeting), "data" never answers the
  end of DATA: for timeouts. `hang_at=None` answers again (new connections).

Each `ReceivedEmail` has `mail_from`, `rcpt_tos`, `raw` (bytes as received) and
`message`, an `email.message.EmailMessage` parsed with `email.policy.default` (headers
decoded: Chinese subjects read back as str).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

__all__ = ["ReceivedEmail", "SmtpServer", "make_certificates", "smtp_server_fixture"]


@dataclass
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage = field(repr=False)

    @property
    def attachments(self) -> list[EmailMessage]:
        """The attachment parts (`get_filename()`, `get_content_type()`, `get_content()`)."""
        return list(self.message.iter_attachments())  # type: ignore[arg-type]

    def body(self, subtype: str = "plain") -> str:
        """The decoded text of the "plain" or "html" body part (line ends as "\\n")."""
        part = self.message.get_body((subtype,))
        assert part is not None, f"no text/{subtype} part"
        return str(part.get_content()).replace("\r\n", "\n")


# ------------------------------------------------------------------- certificates


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost it signed.

    Returns (ca_pem, cert_pem, key_pem). A real CA/leaf pair (not one self-signed
    certificate) so that strict X.509 verification in the client accepts it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OneTrip test SMTP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, cert_pem, key_pem


# ------------------------------------------------------------------------- server


class _Handler:
    """aiosmtpd hooks: refusals and hangs as the server's attributes say, else store."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def _maybe(self, stage: str) -> str | None:
        if self.server.hang_at == stage:
            await asyncio.sleep(3600)
        if self.server.refuse and self.server.refuse_at == stage:
            return self.server.refuse
        return None

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        refused = await self._maybe("ehlo")
        return [refused] if refused else responses

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refused = await self._maybe("mail")
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refused = await self._maybe("rcpt") or self.server.refuse_recipients.get(address)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        refused = await self._maybe("data")
        if refused:
            return refused
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.server.messages.append(
            ReceivedEmail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=parsed,  # type: ignore[arg-type]
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class _Silent(asyncio.Protocol):
    """Accepts the connection and never says a word (a server that times out)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


class _RefuseOnConnect(asyncio.Protocol):
    """Greets with a refusal (e.g. "421 4.3.2 Service not available") and hangs up."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.reply.encode() + b"\r\n")
        transport.close()


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 (a free port), on a thread of its own."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: str | None = None,  # None | "starttls" | "implicit"
        require_starttls: bool = False,
        refuse: str | None = None,
        refuse_at: str = "rcpt",
        refuse_recipients: dict[str, str] | None = None,
        hang_at: str | None = None,
        port: int = 0,  # 0: a free port; an earlier server's port to "restart" it
    ) -> None:
        if tls not in (None, "starttls", "implicit"):
            raise ValueError("tls is None, 'starttls' or 'implicit'")
        self.auth = auth
        self.tls = tls
        self.require_starttls = require_starttls
        self.refuse = refuse
        self.refuse_at = refuse_at
        self.refuse_recipients: dict[str, str] = dict(refuse_recipients or {})
        self.hang_at = hang_at
        self.messages: list[ReceivedEmail] = []
        self.logins: list[str] = []  # user names that authenticated
        self.connections = 0
        self.host = "127.0.0.1"
        self.port = port
        self.cafile: Path | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ssl: ssl.SSLContext | None = None

    # --- what tests read

    @property
    def url(self) -> str:
        """The SMTP_URL for this server (credentials and cafile included)."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        userinfo = ""
        if self.auth:
            userinfo = f"{quote(self.auth[0], safe='')}:{quote(self.auth[1], safe='')}@"
        query = []
        if self.cafile:
            query.append(f"cafile={quote(str(self.cafile))}")
        if self.tls == "starttls" and self.require_starttls:
            query.append("starttls=required")
        return f"{scheme}://{userinfo}{self.host}:{self.port}" + (
            "?" + "&".join(query) if query else ""
        )

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedEmail]:
        """The first `count` messages once that many arrived (fails after `within` s)."""
        deadline = time.monotonic() + within
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"expected {count} emails within {within} s, got {len(self.messages)}")
            await asyncio.sleep(0.02)
        return self.messages[:count]

    # --- the server

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            self.auth is not None
            and isinstance(data, LoginPassword)
            and data.login.decode() == self.auth[0]
            and data.password.decode() == self.auth[1]
        ):
            self.logins.append(self.auth[0])
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _protocol(self) -> asyncio.Protocol:
        self.connections += 1
        if self.hang_at == "connect":
            return _Silent()
        if self.refuse and self.refuse_at == "connect":
            return _RefuseOnConnect(self.refuse)
        assert self._loop is not None
        with warnings.catch_warnings():  # AUTH over plain TCP: wanted here, it is a test
            warnings.simplefilter("ignore", UserWarning)
            return self._smtp()

    def _smtp(self) -> SMTP:
        return SMTP(
            _Handler(self),
            hostname="smtp.test",
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=self._ssl if self.tls == "starttls" else None,
            require_starttls=self.require_starttls,
            auth_required=self.auth is not None,
            # over plain TCP too when the server has no TLS (as some relays allow)
            auth_require_tls=self.tls == "starttls",
            authenticator=self._authenticate if self.auth is not None else None,
            timeout=30,
            loop=self._loop,
        )

    def start(self) -> SmtpServer:
        if self.tls:
            self._folder = tempfile.TemporaryDirectory(prefix="smtp-tls-")
            ca, cert, key = make_certificates(Path(self._folder.name))
            self.cafile = ca
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(cert, key)
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(
                        self._protocol,
                        self.host,
                        self.port,
                        reuse_address=True,
                        ssl=self._ssl if self.tls == "implicit" else None,
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.run_until_complete(asyncio.sleep(0))
                loop.close()

        self._thread = threading.Thread(target=run, name=f"smtp-server-{id(self)}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():

            def close() -> None:
                server.close()
                loop.stop()

            loop.call_soon_threadsafe(close)
        if self._thread is not None:
            self._thread.join(5)
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SmtpServer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpServer]:
    """A plain SMTP server accepting every message (no auth, no TLS)."""
    with SmtpServer() as server:
        yield server
