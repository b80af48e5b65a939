"""Running the fake API: in a background thread for tests and demos, or in the foreground.

`SimulatorServer` binds its socket before uvicorn starts, so the port is known up front
(port 0 picks a free one), and `start()` returns only once uvicorn reports it is serving:
no polling of the port, no sleeping.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import uvicorn

from monitor.simulator.app import build_app
from monitor.simulator.state import Simulator

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
# Long scripted delays stop when the client leaves; this bounds one still being waited on.
_GRACEFUL_SHUTDOWN = 1


class _ReadyServer(uvicorn.Server):
    """A uvicorn server that signals a threading.Event once startup has finished."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            # Also on failure, so start() does not wait out its timeout; it checks `started`.
            self._ready.set()


class SimulatorServer:
    """Serves `sim` on 127.0.0.1 from a daemon thread; use as a context manager.

    ``with SimulatorServer(sim) as srv: httpx.get(srv.url + "/v3/phone_numbers", ...)``
    """

    def __init__(self, sim: Simulator, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.sim = sim
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: _ReadyServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL for a client, e.g. ``http://127.0.0.1:43123`` (no trailing slash)."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Bind, start serving in a background thread, and return once it accepts requests.

        Raises OSError if the port cannot be bound, RuntimeError if uvicorn fails to start.
        """
        if self._thread is not None:
            raise RuntimeError("the simulator server is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.sim),
            log_config=None,  # leave the host application's logging setup alone
            log_level="warning",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        )
        ready = threading.Event()
        self._server = _ReadyServer(config, ready)
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"simulator-{self._port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or not self._server.started:
            self.stop()
            raise RuntimeError(f"simulator server did not start on port {self._port}")

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread; re-raises an error it died with."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError("simulator server did not stop")
        self._server = None
        self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError("simulator server failed") from error

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # handed to the caller's thread by stop()
            self._error = exc
        finally:
            sock.close()

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve_forever(
    sim: Simulator, *, host: str = "127.0.0.1", port: int, log_level: str = "info"
) -> None:
    """Serve `sim` until SIGINT/SIGTERM (for the ``simulate`` command, in the main thread).

    Uvicorn installs its own signal handlers while serving and re-raises the signal after a
    graceful shutdown, so Ctrl-C usually ends in KeyboardInterrupt for the caller to turn
    into an exit code; where SIGINT is ignored (a background job) this simply returns.
    """
    config = uvicorn.Config(build_app(sim), host=host, port=port, log_level=log_level, ws="none")
    await uvicorn.Server(config).serve()
