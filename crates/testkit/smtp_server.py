"""SMTP test server for envdrift's email sink tests (aiosmtpd).

Usage: python smtp_server.py OUTDIR [--auth USER PASSWORD] [--starttls CERT KEY | --tls CERT KEY]

Listens on 127.0.0.1 on a free port and prints `PORT <n>` on stdout. Every accepted message
is saved as OUTDIR/NNNN.eml (the raw message) with OUTDIR/NNNN.json (envelope: mail_from,
rcpt_tos, auth login, tls). Recipients on purpose: `transient@…` gets 451 (try again later),
`reject@…` gets 550 (no such user). With --auth, AUTH (PLAIN/LOGIN, allowed without TLS on
loopback) is required and checked. --starttls requires STARTTLS with that certificate;
--tls speaks TLS from the first byte. Stops when stdin closes.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys
import warnings

# AUTH without TLS is deliberate here (loopback only): keep the test output quiet.
warnings.simplefilter("ignore")

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--auth", nargs=2)
ap.add_argument("--starttls", nargs=2)
ap.add_argument("--tls", nargs=2)
args = ap.parse_args()
out = args.out
creds = tuple(args.auth) if args.auth else None


def context(pair):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pair[0], pair[1])
    return ctx


class Handler:
    def __init__(self):
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local == "transient":
            return "451 4.3.0 mailbox busy, try again later"
        if local == "reject":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(out, f"{self.n:04}")
        login = None
        if session.auth_data is not None:
            login = session.auth_data.login.decode() if isinstance(session.auth_data.login, bytes) else str(session.auth_data.login)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "login": login,
                       "tls": session.ssl is not None
                       or server.transport.get_extra_info("ssl_object") is not None}, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    ok = (auth_data.login.decode(), auth_data.password.decode()) == creds
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


async def main():
    loop = asyncio.get_running_loop()
    handler = Handler()

    def factory():
        kw = {}
        if creds:
            kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
        if args.starttls:
            kw.update(tls_context=context(args.starttls), require_starttls=True)
        return SMTP(handler, hostname="envdrift-test", **kw)

    ssl_ctx = context(args.tls) if args.tls else None
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # Stop when the test closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


asyncio.run(main())
