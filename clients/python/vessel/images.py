"""Images: registry transfer, the local store, archives and credentials.

Results are the generated messages of ``vessel.v1.images_pb2`` (``Image``,
``Descriptor``...), which carry the documented fields of proto/.
"""
from __future__ import annotations

import io
import os
from typing import (TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple, Union)

import grpc

from vessel.errors import NotFoundError, VesselError, call, translate
from vessel.v1 import images_pb2, types_pb2

if TYPE_CHECKING:
    from vessel.client import Client

Image = images_pb2.Image
TransferProgress = images_pb2.TransferProgress
ProgressCallback = Callable[[images_pb2.TransferProgress], None]
Filters = Union[None, Sequence[str], Mapping[str, Union[str, Sequence[str]]]]
PlatformLike = Union[None, str, types_pb2.Platform]
AuthLike = Union[None, Tuple[str, str], images_pb2.RegistryAuth]
PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]

CHUNK = 1 << 20
_FORMATS = {"oci": images_pb2.ARCHIVE_FORMAT_OCI, "docker": images_pb2.ARCHIVE_FORMAT_DOCKER,
            None: images_pb2.ARCHIVE_FORMAT_UNSPECIFIED}


def filters_list(filters: Filters) -> List[str]:
    """["k=v", ...] from a list of such strings or a mapping (a value that is
    a list gives one filter per item: same key = OR)."""
    if not filters:
        return []
    if isinstance(filters, Mapping):
        out = []
        for k, v in filters.items():
            for item in ([v] if isinstance(v, (str, bool, int)) else v):
                if isinstance(item, bool):
                    item = "true" if item else "false"
                out.append(f"{k}={item}")
        return out
    return list(filters)


def platform_message(p: PlatformLike) -> Optional[types_pb2.Platform]:
    """A Platform from "os/arch[/variant]" (or "arch"), or a Platform."""
    if p is None or isinstance(p, types_pb2.Platform):
        return p
    parts = p.split("/")
    if len(parts) == 1:
        return types_pb2.Platform(os="linux", architecture=parts[0])
    return types_pb2.Platform(os=parts[0], architecture=parts[1],
                              variant=parts[2] if len(parts) > 2 else "")


def _auth(auth: AuthLike) -> Optional[images_pb2.RegistryAuth]:
    if auth is None or isinstance(auth, images_pb2.RegistryAuth):
        return auth
    user, password = auth
    return images_pb2.RegistryAuth(username=user, password=password)


def _transfer(stream: Iterator, result: str, progress: Optional[ProgressCallback]):
    final = None
    for msg in translate(stream):
        if msg.HasField("progress"):
            if progress is not None:
                progress(msg.progress)
        elif msg.HasField(result):
            final = getattr(msg, result)
    if final is None:
        raise VesselError(grpc.StatusCode.INTERNAL, "transfer ended without a result")
    return final


class Images:
    """``client.images``: image operations. The raw gRPC methods of the
    Images service stay reachable as ``client.images.Pull(request)`` etc."""

    def __init__(self, client: "Client", stub):
        self._client = client
        self.stub = stub

    def __getattr__(self, name: str):  # raw stub methods (Pull, List, ...)
        return getattr(self.stub, name)

    def _t(self, timeout: Optional[float]) -> Optional[float]:
        return self._client.timeout if timeout is None else timeout

    def pull(self, reference: str, platform: PlatformLike = None,
             progress: Optional[ProgressCallback] = None, auth: AuthLike = None,
             insecure: bool = False, timeout: Optional[float] = None) -> images_pb2.Image:
        """Pulls ``reference`` from its registry and returns the local Image.

        progress: called with each ``TransferProgress`` snapshot (phase,
        per-layer bytes). platform: "linux/arm64" or a Platform (default: the
        host's). auth: (username, password) or a RegistryAuth (default: the
        credentials stored by login(), else anonymous). insecure: plain HTTP
        (and any certificate) for this registry. timeout: seconds for the
        whole transfer (default: none).
        """
        req = images_pb2.ImagesPullRequest(reference=reference, platform=platform_message(platform),
                                           auth=_auth(auth), insecure=insecure)
        return _transfer(self.stub.Pull(req, timeout=timeout), "image", progress)

    def push(self, reference: str, destination: str = "", platform: PlatformLike = None,
             progress: Optional[ProgressCallback] = None, auth: AuthLike = None,
             insecure: bool = False, timeout: Optional[float] = None) -> types_pb2.Descriptor:
        """Pushes a local image (to ``destination``, default the same
        reference); returns the Descriptor of the pushed manifest or index."""
        req = images_pb2.ImagesPushRequest(reference=reference, destination=destination,
                                           platform=platform_message(platform), auth=_auth(auth),
                                           insecure=insecure)
        return _transfer(self.stub.Push(req, timeout=timeout), "pushed", progress)

    def list(self, filters: Filters = None, timeout: Optional[float] = None) -> List[images_pb2.Image]:
        """Local images sorted by name. filters: {"reference": "docker.io/*",
        "label": "k=v", "dangling": True} or ["reference=...", ...]."""
        req = images_pb2.ImagesListRequest(filters=filters_list(filters))
        return list(call(self.stub.List, req, self._t(timeout)).images)

    def inspect(self, reference: str, platform: PlatformLike = None,
                timeout: Optional[float] = None) -> images_pb2.Image:
        """One local image by reference, digest or digest prefix."""
        req = images_pb2.ImagesInspectRequest(reference=reference, platform=platform_message(platform))
        return call(self.stub.Inspect, req, self._t(timeout)).image

    def exists(self, reference: str) -> bool:
        """Whether a local image matches ``reference``."""
        try:
            self.inspect(reference)
            return True
        except NotFoundError:
            return False

    def tag(self, source: str, target: str, timeout: Optional[float] = None) -> images_pb2.Image:
        """Points reference ``target`` at the image ``source`` names."""
        req = images_pb2.ImagesTagRequest(source=source, target=target)
        return call(self.stub.Tag, req, self._t(timeout)).image

    def delete(self, reference: str, force: bool = False,
               timeout: Optional[float] = None) -> images_pb2.ImagesDeleteResponse:
        """Removes a reference (and blobs no longer used); returns what was
        untagged and deleted."""
        req = images_pb2.ImagesDeleteRequest(reference=reference, force=force)
        return call(self.stub.Delete, req, self._t(timeout))

    def prune(self, all: bool = False, filters: Filters = None,
              timeout: Optional[float] = None) -> images_pb2.ImagesPruneResponse:
        """Deletes unreferenced blobs (with all=True also unused images)."""
        req = images_pb2.ImagesPruneRequest(all=all, filters=filters_list(filters))
        return call(self.stub.Prune, req, self._t(timeout))

    def export(self, references: Union[str, Sequence[str]], format: str = "oci",
               platform: PlatformLike = None, timeout: Optional[float] = None) -> Iterator[bytes]:
        """Streams images as a tar archive (format "oci" or "docker"), in chunks."""
        refs = [references] if isinstance(references, str) else list(references)
        req = images_pb2.ImagesExportRequest(references=refs, format=_FORMATS[format],
                                             platform=platform_message(platform))
        for msg in translate(self.stub.Export(req, timeout=timeout)):
            yield msg.data

    def save(self, references: Union[str, Sequence[str]], path: PathOrFile, format: str = "oci",
             platform: PlatformLike = None, timeout: Optional[float] = None) -> int:
        """Writes images as a tar archive to ``path`` (a file name or a
        binary file object); returns the number of bytes written. The file
        is only created once the first chunk arrived (no empty file on
        NOT_FOUND)."""
        chunks = self.export(references, format, platform, timeout)
        first = next(chunks, b"")
        if hasattr(path, "write"):
            f, own = path, False
        else:
            f, own = open(path, "wb"), True
        n = 0
        try:
            for chunk in _chain(first, chunks):
                f.write(chunk)
                n += len(chunk)
        finally:
            if own:
                f.close()
        return n

    def load(self, source: Union[PathOrFile, bytes], reference: str = "",
             format: Optional[str] = None, platform: PlatformLike = None,
             timeout: Optional[float] = None) -> List[images_pb2.Image]:
        """Imports images from a tar archive (OCI layout or "docker save",
        optionally gzip-compressed): a file name, binary file object or bytes.
        reference: the name to give a single-image archive."""
        header = images_pb2.ImagesImportHeader(format=_FORMATS[format], reference=reference,
                                               platform=platform_message(platform))

        def requests():
            yield images_pb2.ImagesImportRequest(header=header)
            for chunk in _read_chunks(source):
                yield images_pb2.ImagesImportRequest(data=chunk)
        return list(call(self.stub.Import, requests(), timeout).images)

    def login(self, server: str, username: str, password: str, insecure: bool = False,
              timeout: Optional[float] = None) -> str:
        """Verifies and stores registry credentials; returns the normalized
        registry name. A rejection raises UnauthenticatedError."""
        req = images_pb2.ImagesLoginRequest(server=server, username=username, password=password,
                                            insecure=insecure)
        return call(self.stub.Login, req, self._t(timeout)).server

    def logout(self, server: str, timeout: Optional[float] = None) -> bool:
        """Forgets stored credentials; True if there were some."""
        req = images_pb2.ImagesLogoutRequest(server=server)
        return call(self.stub.Logout, req, self._t(timeout)).removed

    def create_rootfs(self, reference: str, output_path: str = "", platform: PlatformLike = None,
                      free_bytes: int = 0, size_bytes: int = 0,
                      timeout: Optional[float] = None) -> images_pb2.ImagesCreateRootfsResponse:
        """Builds (or finds cached) the ext4 root filesystem of an image."""
        req = images_pb2.ImagesCreateRootfsRequest(
            reference=reference, platform=platform_message(platform), free_bytes=free_bytes,
            size_bytes=size_bytes, output_path=output_path)
        return call(self.stub.CreateRootfs, req, timeout)


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _read_chunks(source: Union[PathOrFile, bytes]) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                return
            yield chunk
    with open(source, "rb") as f:
        yield from _read_chunks(f)
