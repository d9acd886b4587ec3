"""One app per library: a lock file in the library's data folder, and a local socket to wake the first app.

The first app to open a library takes ``gui.lock`` (a :class:`QLockFile`: a lock left by a crashed app is
taken over, since its process is gone) and listens on a local socket named after the library. A second
launch on the same library cannot take the lock; it connects to that socket instead, which brings the
running window to the front, and exits.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_MS = 1500


def server_name(data_folder: Path) -> str:
    """The local socket's name for a library (per user and per library folder)."""
    digest = hashlib.blake2b(str(data_folder.resolve()).encode(), digest_size=8).hexdigest()
    return f"photoembed-{digest}"


class SingleInstance(QObject):
    """Holds the library's GUI lock. GUI thread only.

    Args:
        data_folder: the library's data folder (``Paths.data``).

    Signals:
        activated(): another launch asked this app to come to the front.
    """

    activated = Signal()

    def __init__(self, data_folder: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.data_folder = data_folder
        self.name = server_name(data_folder)
        data_folder.mkdir(parents=True, exist_ok=True)
        self._lock = QLockFile(str(data_folder / "gui.lock"))
        self._server: QLocalServer | None = None

    def acquire(self) -> bool:
        """Take the lock and listen (True), or wake the app that holds it (False)."""
        if not self._lock.tryLock(100):
            logger.info("The library in %s is open in another photoembed window", self.data_folder)
            self._wake_other()
            return False
        QLocalServer.removeServer(self.name)  # a socket left behind by a crashed app
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            logger.warning("Cannot listen on %s: %s", self.name, server.errorString())
        server.newConnection.connect(self._connection)
        self._server = server
        return True

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._lock.isLocked():
            self._lock.unlock()

    def _connection(self) -> None:
        server = self._server
        while server is not None and server.hasPendingConnections():
            socket = server.nextPendingConnection()
            socket.disconnected.connect(socket.deleteLater)
            socket.disconnectFromServer()
            self.activated.emit()

    def _wake_other(self) -> bool:
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
            logger.warning("The other photoembed window did not answer: %s", socket.errorString())
            return False
        socket.write(b"raise\n")
        socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
        socket.disconnectFromServer()
        return True
