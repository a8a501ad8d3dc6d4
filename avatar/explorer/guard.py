"""The explorer's gate: which WebSocket clients and which of their messages reach the page's state.

The page binds loopback, but any web page the user visits runs in a local
browser and can open a WebSocket to ``127.0.0.1``. viser (1.1) accepts every
connection and applies most client messages as they come. Every incoming
message passes through one hook here, :meth:`ClientGuard.allow`, installed on
the WebSocket server's dispatch, so none of these checks can be skipped:

* **Origin.** A connection is accepted only when its ``Origin`` header is the
  page's own origin: the ``Host`` it asked for, which must name this server
  (a loopback name when bound to loopback, so DNS rebinding does not pass).
  Other connections are closed (1008) before any of their messages is handled.
* **Widgets.** A GUI update is accepted only when it sets ``value`` (nothing
  else: not ``min``, ``max``, ``visible``, ``disabled`` or a callback list) on
  one of the explorer's own input widgets, from a client that finished
  viser's handshake, and when the widget's validator accepts the value. So an
  unvalidated value is never stored or broadcast to the other viewers.
* **Message types.** Only camera updates, GUI updates and uploads are handled;
  every other client message (share-URL requests, forms, commands, scene
  events) is dropped, since the page uses none.
* **Uploads.** An upload is refused by its declared size, and a transfer whose
  parts exceed the declared size or :data:`MAX_UPLOAD` is dropped, so the
  server never buffers more than that per upload.

Everything refused is counted in :attr:`ClientGuard.refused` (tests read it) and
logged in one line; a refused widget value is put back on every page.
"""
from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

MAX_UPLOAD = 256 * 1024  # bytes: a preset YAML is a few kB
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _host_name(netloc: str) -> str:
    """``[::1]:8080`` -> ``::1``; ``localhost:80`` -> ``localhost`` (lower case)."""
    try:
        return (urlsplit("//" + netloc).hostname or "").lower()
    except ValueError:
        return ""


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_allowed(origin: str | None, host_header: str | None, bound_host: str) -> bool:
    """Is a WebSocket handshake with these headers from the page this server serves?

    The ``Origin`` must be ``http(s)://`` + the ``Host`` header exactly, and that host must name
    this server: a loopback name when it is bound to loopback, the bound address (or a loopback
    name) otherwise; any name only when it is bound to all interfaces on purpose (``--host 0.0.0.0``).
    A request without ``Origin`` comes from no browser page and is refused too.
    """
    if not origin or not host_header:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != host_header.strip().lower():
        return False
    name = _host_name(host_header)
    if not name:
        return False
    bound = (bound_host or "").strip("[]").lower()
    if bound in ("", "0.0.0.0", "::"):
        return True
    if _is_loopback(bound):
        return _is_loopback(name)
    return name == bound or _is_loopback(name)


class ClientGuard:
    """Installed on a ``viser.ViserServer``; see the module docstring.

    ``validators`` maps a widget handle to a function that raises ``ValueError`` (or
    ``ConfigError``, a ValueError) for a value the page must not take, e.g. the designer
    slider's range check. Widgets not listed accept no client updates at all.
    ``upload_buttons`` are the upload widgets whose transfers are accepted (bounded by
    ``max_upload`` bytes); ``notify(client_id, title, body)`` tells one page why.
    """

    def __init__(self, server, max_upload: int = MAX_UPLOAD, notify: Callable | None = None,
                 log: Callable[[str], None] = print):
        from viser import _messages

        self.server, self.max_upload, self.log = server, int(max_upload), log
        self.notify = notify or (lambda *_: None)
        self.validators: dict[str, tuple[object, Callable]] = {}  # widget uuid -> (handle, validator)
        self.uploads: set[str] = set()
        self.bad_clients: set[int] = set()
        self.refused: Counter = Counter()
        self._m = _messages
        ws = server._websock_server
        self._ws = ws
        self._dispatch = ws._handle_incoming_message
        ws._handle_incoming_message = self._guarded_dispatch  # every client message passes here
        ws._client_connect_cb.insert(0, self._on_connect)       # before viser's own: nothing runs first

    # -- registration --------------------------------------------------------------------------------
    def accept(self, handle, validator: Callable) -> None:
        """Let clients set ``handle.value`` when ``validator(value)`` does not raise."""
        self.validators[handle._impl.uuid] = (handle, validator)

    def accept_uploads(self, handle) -> None:
        self.uploads.add(handle._impl.uuid)

    # -- the connection gate -------------------------------------------------------------------------
    async def _on_connect(self, conn) -> None:
        connection = self._ws._live_connections.get(conn.client_id)
        headers = getattr(getattr(connection, "request", None), "headers", None)
        origin = headers.get("Origin") if headers is not None else None
        host = headers.get("Host") if headers is not None else None
        if origin_allowed(origin, host, self.server.get_host()):
            return
        self.bad_clients.add(conn.client_id)
        self._refuse("origin", f"a WebSocket from origin {origin!r} (host {host!r}) was refused: only the "
                               "explorer's own page may connect")
        if connection is not None:
            await connection.close(1008, "origin not allowed")

    # -- every message -------------------------------------------------------------------------------
    async def _guarded_dispatch(self, client_id, message) -> None:
        if self.allow(client_id, message):
            await self._dispatch(client_id, message)

    def allow(self, client_id: int, message) -> bool:
        """Whether ``message`` from ``client_id`` may reach viser's handlers (and so the state)."""
        m = self._m
        if client_id in self.bad_clients:
            self.refused["bad client"] += 1
            return False
        if isinstance(message, m.GuiUpdateMessage):
            return self._allow_update(client_id, message)
        if isinstance(message, m.FileTransferStartUpload):
            return self._allow_upload_start(client_id, message)
        if isinstance(message, m.FileTransferPart):
            return self._allow_upload_part(message)
        if isinstance(message, m.ViewerCameraMessage):
            return True
        # everything else the page never needs: share-URL requests, button holds, forms, commands,
        # scene pointer and node events (the explorer registers none of those)
        self.refused["message type"] += 1
        return False

    def _allow_update(self, client_id: int, message) -> bool:
        entry = self.validators.get(message.uuid)
        updates = message.updates if isinstance(message.updates, dict) else {}
        if entry is None:
            return self._refuse("widget", f"client {client_id} tried to update a widget the page does not let "
                                "clients change")
        if set(updates) != {"value"}:
            keys = ", ".join(sorted(map(str, updates)))[:80]
            return self._refuse("property", f"client {client_id} tried to set {keys or 'nothing'} on a widget; "
                                "only its value may be changed")
        if client_id not in self.server._connected_clients:  # viser's handshake (first camera message) first
            return self._refuse("handshake", f"client {client_id} sent a value before its handshake")
        handle, validate = entry
        value = updates["value"]
        try:
            validate(value)
        except (ValueError, TypeError, OverflowError) as err:
            self._refuse("value", f"client {client_id}: value refused: {err}")
            self.notify(client_id, "Value refused", str(err))
            self._put_back(message.uuid, handle)
            return False
        return True

    def _allow_upload_start(self, client_id: int, message) -> bool:
        size, parts = message.size_bytes, message.part_count
        if message.source_component_uuid not in self.uploads:
            return self._refuse("upload", f"client {client_id} sent a file to a widget that takes none")
        if not isinstance(size, int) or not isinstance(parts, int) or size < 0 or parts < 0 \
                or size > self.max_upload or parts > size + 1:
            shown = f"{size:,} bytes" if isinstance(size, int) else "an unknown size"
            self.notify(client_id, "Not loaded", f"the file is larger than {self.max_upload // 1024} kB "
                                                 f"(it declared {shown})")
            return self._refuse("upload", f"client {client_id}: upload of {shown} refused "
                                          f"(at most {self.max_upload:,})")
        return True

    def _allow_upload_part(self, message) -> bool:
        states = self.server.gui._current_file_upload_states
        state = states.get(message.transfer_uuid)
        if state is None:  # refused at its start, or finished: nothing to buffer into
            return False
        content = message.content if isinstance(message.content, (bytes, bytearray, memoryview)) else b""
        if state["transferred_bytes"] + len(content) > min(state["total_bytes"], self.max_upload):
            states.pop(message.transfer_uuid, None)  # drop what was buffered: never more than declared
            return self._refuse("upload", "an upload sent more bytes than it declared; dropped")
        return True

    # -- helpers -------------------------------------------------------------------------------------
    def _refuse(self, kind: str, line: str) -> bool:
        self.refused[kind] += 1
        self.log(f"explorer: {line}")
        return False

    def _put_back(self, uuid: str, handle) -> None:
        """Every page shows the widget's (unchanged) server value again."""
        self._ws.queue_message(self._m.GuiUpdateMessage(uuid, {"value": handle._impl.value}))


__all__ = ["ClientGuard", "MAX_UPLOAD", "origin_allowed"]
