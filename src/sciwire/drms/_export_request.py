"""``ExportRequest`` (public as :class:`sciwire.drms.client.ExportRequest`).

Status handling follows drms: 0 done, 1/2/6 pending (6: not registered yet), the rest
failed. Downloads go through sciwire's concurrent, resuming transfer; every file name the
server supplies is checked to be a plain name inside the download folder.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urljoin

import sciwire.drms._pandas as _pandas
from sciwire.drms._downloads import download_each_blocking
from sciwire.drms._transfer import poll_interval, safe_target
from sciwire.drms._transport import BlockingTransport
from sciwire.drms.config import ServerConfig
from sciwire.drms.exceptions import DrmsExportError
from sciwire.drms.json import HttpJsonClient

__all__ = ["ExportRequest"]

logger = logging.getLogger("sciwire.drms.client")


class _Owner(Protocol):
    """What an ExportRequest needs of its Client."""

    _json: HttpJsonClient
    verbose: bool

    @property
    def _server(self) -> ServerConfig: ...

    def _filename_from_export_record(
        self, rs: str, *, old_fname: str | None = None
    ) -> str | None: ...


class ExportRequest:
    """One export request: its status, files, and their download.

    Made by :meth:`Client.export` or :meth:`Client.export_from_id`.
    """

    _status_code_ok = 0
    _status_code_notfound = 6
    _status_codes_pending = (1, 2, _status_code_notfound)
    _status_codes_ok_or_pending = (_status_code_ok, *_status_codes_pending)

    def __init__(self, d: dict[str, Any], client: _Owner) -> None:
        self._client = client
        self._requestid: str | None = None
        self._status: int | None = None
        self._download_urls_cache: Any = None
        self._update_status(d=d)

    @classmethod
    def _create_from_id(cls, requestid: str, client: _Owner) -> ExportRequest:
        return cls(client._json.exp_status(requestid), client)

    def __repr__(self) -> str:
        return f"<ExportRequest: id={self._requestid}, status={self._status}>"

    def _log(self, msg: str, *args: Any) -> None:
        level = logging.INFO if getattr(self._client, "verbose", False) else logging.DEBUG
        logger.log(level, msg, *args)

    @staticmethod
    def _parse_data(d: Any) -> Any:
        pd = _pandas.pandas()
        rows = None if d is None else [(it.get("record"), it.get("filename")) for it in d]
        return pd.DataFrame(rows, columns=["record", "filename"])

    def _update_status(self, *, d: dict[str, Any] | None = None) -> None:
        if d is None and self._requestid is not None:
            d = self._client._json.exp_status(self._requestid)
        if d is None:
            raise DrmsExportError("export request without a request id")
        self._d = d
        self._d_time = time.monotonic()
        try:
            self._status = int(d.get("status", self._status))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise DrmsExportError(f"export status is not a number: {d.get('status')!r}") from exc
        # mpg/mp4 exports answer "reqid"; url_quick as-is answers an empty id
        rid = d.get("requestid", self._requestid)
        if rid is None:
            rid = d.get("reqid")
        self._requestid = rid or None

    def _raise_on_error(self, *, notfound_ok: bool = True) -> None:
        if self._status in self._status_codes_ok_or_pending and (
            self._status != self._status_code_notfound or notfound_ok
        ):
            return
        msg = self._d.get("error") or "DRMS export request failed."
        raise DrmsExportError(f"{msg} [status={self._status}]", code=self._status, data=self._d)

    def _finished_d(self) -> dict[str, Any]:
        """The status dict once finished (waiting if needed); raises if the export failed."""
        if self.has_finished(skip_update=True):
            self._raise_on_error()
        else:
            self.wait()
        return self._d

    @property
    def id(self) -> str | None:
        """The request id (None for url_quick exports answered at once)."""
        return self._requestid

    @property
    def status(self) -> int | None:
        """The last known export status code."""
        return self._status

    @property
    def method(self) -> str | None:
        """The export method."""
        return self._d.get("method")

    @property
    def protocol(self) -> str | None:
        """The export protocol."""
        return self._d.get("protocol")

    @property
    def dir(self) -> str | None:
        """The export's folder on the server (waits for the export to finish)."""
        data_dir = self._finished_d().get("dir")
        return str(data_dir) if data_dir else None

    @property
    def data(self) -> Any:
        """DataFrame of the exported records and file names (``record``, ``filename``)."""
        return self._parse_data(self._finished_d().get("data"))

    @property
    def tarfile(self) -> str | None:
        """The tar file's name for tar exports, else None."""
        name = self._finished_d().get("tarfile")
        return str(name) if name else None

    @property
    def keywords(self) -> str | None:
        """The name of the export's keywords text file, if any."""
        name = self._finished_d().get("keywords")
        return str(name) if name else None

    @property
    def request_url(self) -> str | None:
        """The URL of the export's folder, or None."""
        data_dir = self.dir
        base = self._client._server.http_download_baseurl
        if data_dir is None or base is None:
            return None
        return urljoin(str(base), data_dir.lstrip("/"))

    @property
    def urls(self) -> Any:
        """DataFrame of the files to download (``record``, ``filename``, ``url``)."""
        if self._download_urls_cache is None:
            self._download_urls_cache = self._generate_download_urls()
        return self._download_urls_cache

    def _generate_download_urls(self) -> Any:
        pd = _pandas.pandas()
        res = self.data.copy()
        data_dir = self.dir
        if self.protocol in ("mpg", "mp4") and len(res) and str(res.record[0]).startswith("movie"):
            res.loc[0, "record"] = None  # a movie's first entry is not a DRMS record
        if self.tarfile is not None:
            data_dir = None
            res = pd.DataFrame([(None, self.tarfile)], columns=["record", "filename"])
        if data_dir is None:
            # the file names are full paths on the server
            fpaths = list(res.filename)
            res = res.drop(columns="filename")
            res["filename"] = [str(fp).split("/")[-1] for fp in fpaths]
        else:
            fpaths = [f"{data_dir}/{name}" for name in res.filename]
        method = self.method or ""
        if not method.startswith("url"):
            raise DrmsExportError(f"Download is not supported for export method {method}")
        base = self._client._server.http_download_baseurl
        if base is None:
            raise DrmsExportError(f"Server {self._client._server.name!r} has no download URL")
        res["url"] = [urljoin(base, str(fp).lstrip("/")) for fp in fpaths]
        return res[res.filename != "NoDataFile"]

    def has_finished(self, *, skip_update: bool = False) -> bool:
        """Whether the export has finished (asking the server unless *skip_update*)."""
        if self._status not in self._status_codes_pending:
            return True
        if not skip_update:
            self._update_status()
        return self._status not in self._status_codes_pending

    def has_succeeded(self, *, skip_update: bool = False) -> bool:
        """Whether the export has finished successfully."""
        return self.has_finished(skip_update=skip_update) and self._status == 0

    def has_failed(self, *, skip_update: bool = False) -> bool:
        """Whether the export has finished and failed."""
        if not self.has_finished(skip_update=skip_update):
            return False
        return self._status not in self._status_codes_ok_or_pending

    def wait(
        self, *, timeout: float | None = None, sleep: float | None = 5, retries_notfound: int = 5
    ) -> bool:
        """Poll until the export finishes: True when done, False when *timeout* runs out.

        Args:
            timeout: seconds to wait at most (None: until the export finishes or fails).
            sleep: seconds between polls (None: the server's suggested ``wait``).
            retries_notfound: polls allowed to answer "not found" (status 6) in a row.

        Raises:
            DrmsExportError: the export failed, or stayed unknown to the server.
        """
        start = time.monotonic()
        retries = int(retries_notfound)
        if self.has_finished(skip_update=True):
            self._raise_on_error()
            return True
        while True:
            self._log("Export request pending. [id=%s, status=%s]", self._requestid, self._status)
            # the server's suggestion is bounded (and a bad one read as 1 s) as for
            # HttpJsonClient.wait_for_export: a "wait" of 999999 must not stall us
            pause = poll_interval({"wait": self._d.get("wait", 5)}, sleep)
            pause = max(0.0, pause - (time.monotonic() - self._d_time))
            if timeout is not None and start + float(timeout) < time.monotonic() + pause:
                return False
            time.sleep(pause)
            if self.has_finished():
                self._raise_on_error()
                return True
            if self._status == self._status_code_notfound:
                if retries <= 0:
                    self._raise_on_error(notfound_ok=False)
                self._log("Request not found on server, %d retries left.", retries)
                retries -= 1

    def download(
        self,
        directory: str | Path,
        *,
        index: int | list[int] | None = None,
        fname_from_rec: bool | None = None,
        timeout: float | None = 60,
        concurrency: int = 4,
        progress: bool | None = None,
    ) -> Any:
        """Download the export's files into *directory* (which must exist).

        Files download concurrently and resume from ``.part`` files; an existing file is
        never overwritten (the new one gets ``.1``, ``.2``...). A file that fails to
        download gets None in the result (and a log line), as in drms.

        Args:
            directory: the download folder.
            index: the index (or indices) of the files to fetch; None for all.
            fname_from_rec: name files after their records (default: for url_quick).
            timeout: seconds for connecting and for each read.
            concurrency: files fetched at once.
            progress: a progress line on stderr (default: when it is a terminal).

        Returns:
            DataFrame with ``record``, ``url`` and ``download`` (the local Path or None).

        Raises:
            OSError: *directory* does not exist.
            DrmsExportError: the export failed, or the server named a file outside
                *directory* (nothing is written then).
        """
        out_dir = Path(directory).absolute()
        if not out_dir.is_dir():
            raise OSError(f"Download directory {out_dir} does not exist")
        if index is not None:
            index = [int(index)] if isinstance(index, int) else [int(i) for i in index]
        self.wait()
        if fname_from_rec is None:
            fname_from_rec = self.method == "url_quick"
        data = self.urls
        if index is not None and self.tarfile is None:
            data = data.iloc[index].copy()
        jobs: list[tuple[str, str]] = []
        taken: set[str] = set()
        for record, filename, url in zip(data.record, data.filename, data.url, strict=True):
            name = None
            if fname_from_rec and record is not None:
                name = self._client._filename_from_export_record(record, old_fname=filename)
            name = str(name or filename)
            safe_target(out_dir, name)  # before any name is made unique
            local, i = name, 1
            while local in taken or (out_dir / local).exists():
                local, i = f"{name}.{i}", i + 1
            taken.add(local)
            jobs.append((local, quote(url, safe=":/?&=%#@+~,;")))

        def failed(url: str, exc: Exception) -> None:
            logger.warning("Could not download %s: %s", url, exc)

        transport = BlockingTransport(timeout=timeout)
        try:
            got = download_each_blocking(
                transport,
                jobs,
                out_dir,
                concurrency=concurrency,
                progress=progress,
                overwrite=True,  # names were made unique above; a .part left over is resumed
                failed=failed,
            )
        finally:
            transport.close()
        res = data[["record", "url"]].copy()
        res["download"] = got
        return res
