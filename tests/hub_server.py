"""A protocol-level Hugging Face Hub for tests: the endpoints the real `huggingface_hub` client and
`transformers.from_pretrained` call, served by a stdlib HTTP server on 127.0.0.1 with its data in a temp dir.

`HF_ENDPOINT`/`HF_HUB_DISABLE_XET` are read when `huggingface_hub` is imported, and the pytest process has imported
it already, so clients run in subprocesses: `run_client(code, hub_env(server, token=WRITE_TOKEN))`. Test modules get
the `hub` fixture with `from hub_server import hub_fixture  # noqa: F401`.

State: each repo is a list of commits (a full file map each: path -> sha256, size, LFS flag) plus branch and tag refs;
blobs live on disk by sha256. Like the Hub, a new repo starts with an "initial commit" holding `.gitattributes`.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import textwrap
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

WRITE_TOKEN = "hf_writer"  # user "tester", member of org "time": may write to "tester/*" and "time/*"
READ_TOKEN = "hf_reader"  # the same user with a read-only token: reads private "time/*", writes nothing
OTHER_TOKEN = "hf_other"  # user "mallory", no orgs: public reads only, writes only "mallory/*"
DEFAULT_TOKENS = {
    WRITE_TOKEN: ("tester", ["time"]),
    READ_TOKEN: ("tester", ["time"], "read"),
    OTHER_TOKEN: ("mallory", []),
}
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # the client keeps this 401 a plain HfHubHTTPError
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz *.onnx"
    " *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar *.tflite *.tgz"
    " *.wasm *.xz *.zip *.zst *tfevents* *.png *.jpg *.jpeg *.gif *.webp"
).split()
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MB and more with LFS whatever their name
YAML_BLOCK = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")  # as huggingface_hub.repocard
CARD_STR = {"library_name", "pipeline_tag", "thumbnail", "pretty_name", "license_name", "license_link", "title"}
CARD_STR_OR_LIST = {"language", "license", "datasets", "metrics", "base_model", "task_categories", "size_categories"}
CARD_LIST = {"tags", "model-index", "widget", "configs"}
SDKS = {"gradio", "streamlit", "docker", "static"}


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Entry:
    """A file in a commit. `oid` is its git blob id (of the LFS pointer for LFS files), as in the Hub's tree API."""

    sha256: str
    size: int
    lfs: bool
    oid: str

    @classmethod
    def of(cls, data: bytes) -> Entry:
        return cls(hashlib.sha256(data).hexdigest(), len(data), False, git_oid(data))

    @classmethod
    def lfs_file(cls, sha256: str, size: int) -> Entry:
        return cls(sha256, size, True, git_oid(lfs_pointer(sha256, size)))


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str
    files: dict[str, Entry]


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    sdk: str | None = None
    created: str = field(default_factory=now)
    commits: list[Commit] = field(default_factory=list)  # oldest first
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    gated: bool = False  # files only for signed-in members of the namespace (metadata and listings stay public)

    @property
    def namespace(self) -> str:
        return self.id.split("/")[0]

    def commit(self, sha: str) -> Commit:
        return next(c for c in self.commits if c.id == sha)


@dataclass(frozen=True)
class User:
    name: str
    orgs: tuple[str, ...]
    write: bool

    def member(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


@dataclass
class Request:
    method: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    user: User | None

    def json(self):
        return json.loads(self.body or b"{}")


API = r"/api/(?P<tp>model|dataset|space)s/(?P<ns>[^/]+)/(?P<name>[^/]+)"
GIT = r"/(?:(?P<tp>dataset|space)s/)?(?P<ns>[^/]+)/(?P<name>[^/]+?)\.git/info/lfs/objects"
ROUTES = [
    ("POST", r"/api/repos/create", "create_repo"),
    ("DELETE", r"/api/repos/delete", "delete_repo"),
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", r"/api/collections", "create_collection"),
    ("GET", r"/api/collections/(?P<slug>[^/]+/[^/]+)", "get_collection"),
    ("POST", r"/api/collections/(?P<slug>[^/]+/[^/]+)/items?", "add_collection_item"),
    ("GET", API + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("GET", API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "tree"),
    ("GET", API + r"/refs", "refs"),
    ("GET", API + r"/commits/(?P<rev>[^/]+)", "commits"),
    ("POST", API + r"/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", API + r"/commit/(?P<rev>[^/]+)", "commit"),
    ("POST", API + r"/tag/(?P<rev>[^/]+)", "create_tag"),
    ("POST", GIT + r"/batch", "lfs_batch"),
    ("PUT", r"/lfs-upload/(?P<ticket>[0-9a-f]+)", "lfs_put"),
    ("GET HEAD", r"/(?:(?P<tp>dataset|space)s/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
     "resolve"),
]  # fmt: skip
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
REPO_URL = re.compile(r"^/api/(models|datasets|spaces)/.+|^/.+/resolve/.+")  # the client's REPO_API_REGEX


class HubServer:
    """The fake Hub. `tokens` maps a token to `(user, orgs)` or `(user, orgs, "read")` (default: `DEFAULT_TOKENS`).

    Test helpers: `repo(repo_id, repo_type)` (the `Repo` state or None), `files(...)` (path -> bytes at a revision),
    `blob_count()`, `log` (method, path, status) and `errors` (tracebacks of handler crashes, answered with 500)."""

    def __init__(self, root: str | Path, tokens: dict[str, tuple] | None = None):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        spec = DEFAULT_TOKENS if tokens is None else tokens
        self.tokens = {t: User(v[0], tuple(v[1]), "read" not in v[2:]) for t, v in spec.items()}
        self.unreachable: set[str] = set()  # file paths (parts) whose downloads fail with 503: a network drop
        self.repos: dict[tuple[str, str], Repo] = {}
        self.collections: dict[str, dict] = {}
        self.tickets: dict[str, tuple[str, int]] = {}  # LFS upload ticket -> (sha256, size)
        self.log: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self.lock = threading.RLock()
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None

    # ---- lifecycle ----
    def start(self) -> HubServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ---- state helpers ----
    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        commit = self._commit_at(self.repos[(repo_type, repo_id)], revision)
        return {p: self._blob(e.sha256).read_bytes() for p, e in commit.files.items()}

    def blob_count(self) -> int:
        return sum(1 for p in (self.root / "blobs").iterdir() if not p.name.startswith("."))

    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self._blob(sha).exists():
            fd, tmp = tempfile.mkstemp(dir=self.root / "blobs", prefix=".")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._blob(sha))
        return sha

    def _entry(self, data: bytes) -> Entry:
        self._store(data)
        return Entry.of(data)

    def _new_commit(self, repo: Repo, branch: str, files: dict[str, Entry], title: str, message: str, author: str):
        with self.lock:
            parent = repo.branches.get(branch)
            self._counter += 1
            key = json.dumps([parent, title, sorted((p, e.sha256) for p, e in files.items()), self._counter])
            commit = Commit(hashlib.sha1(key.encode()).hexdigest(), parent, title, message, author, now(), files)
            repo.commits.append(commit)
            repo.branches[branch] = commit.id
            return commit

    def _commit_at(self, repo: Repo, rev: str) -> Commit:
        sha = repo.branches.get(rev) or repo.tags.get(rev) or rev
        if not any(c.id == sha for c in repo.commits):
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commit(sha)

    # ---- auth ----
    def _repo(self, req: Request, m: dict, write: bool = False) -> Repo:
        """The repo a request names, if the caller may see it (and write it): errors and codes as the Hub's."""
        repo = self.repos.get((m.get("tp") or "model", f"{m['ns']}/{m['name']}"))
        if repo is None or (repo.private and not (req.user and req.user.member(repo.namespace))):
            if req.user is None:  # the Hub answers 401 to anonymous calls on missing and private repos alike
                raise HubError(401, "Invalid username or password.", "RepoNotFound")
            raise HubError(404, "Repository not found", "RepoNotFound")
        if write:
            self._check_write(req, repo.namespace)
        return repo

    def _check_write(self, req: Request, namespace: str) -> None:
        if req.user is None:
            raise HubError(401, "You must be authenticated to write")
        if not (req.user.write and req.user.member(namespace)):
            raise HubError(403, f"You don't have the rights to write to '{namespace}'")

    # ---- repos: HfApi.create_repo / delete_repo / whoami ----
    def create_repo(self, req: Request, m: dict):
        """`HfApi.create_repo`: 409 with the repo `url` when it exists, so `exist_ok=True` works."""
        body = req.json()
        tp, ns = body.get("type") or "model", body.get("organization") or (req.user and req.user.name)
        self._check_write(req, ns)
        repo_id = f"{ns}/{body['name']}"
        url = f"{self.url}/{PREFIX[tp]}{repo_id}"
        if tp == "space" and body.get("sdk") not in SDKS:
            raise HubError(400, f"Invalid sdk, expected one of {sorted(SDKS)}")
        with self.lock:
            if (tp, repo_id) in self.repos:
                raise HubError(409, f"You already created this {tp} repo", url=url)
            repo = Repo(tp, repo_id, body.get("visibility", "public") != "public", body.get("sdk"))
            files = {".gitattributes": self._entry(GITATTRIBUTES)}
            if tp == "space":
                card = f"---\ntitle: {body['name']}\nemoji: 🚀\nsdk: {repo.sdk}\npinned: false\n---\n"
                files["README.md"] = self._entry(card.encode())
            self._new_commit(repo, "main", files, "initial commit", "", req.user.name)
            self.repos[(tp, repo_id)] = repo
        return {"url": url, "name": repo_id, "id": repo_id}

    def delete_repo(self, req: Request, m: dict):
        """`HfApi.delete_repo`."""
        body = req.json()
        repo = self._repo(req, {"tp": body.get("type"), "ns": body.get("organization"), "name": body["name"]}, True)
        with self.lock:
            del self.repos[(repo.type, repo.id)]
        return {}

    def whoami(self, req: Request, m: dict):
        """`HfApi.whoami` (`create_collection` without namespace asks it for the user name)."""
        if req.user is None:
            raise HubError(401, INVALID_CREDENTIALS)
        role = "write" if req.user.write else "read"
        orgs = [{"type": "org", "name": o, "roleInOrg": role} for o in req.user.orgs]
        auth = {"accessToken": {"displayName": "test", "role": role}}
        return {"type": "user", "name": req.user.name, "fullname": req.user.name, "orgs": orgs, "auth": auth}

    # ---- cards: HfApi._validate_yaml (upload_folder/create_commit with a README.md) and ModelCard.validate ----
    def validate_yaml(self, req: Request, m: dict):
        """200 with warnings, or 400 with `errors` (JSON, or plain text when the client accepts text/plain)."""
        body = req.json()
        errors, warnings = card_problems(body.get("content", ""), body.get("repoType") or "model")
        if not errors:
            return {"errors": [], "warnings": [{"message": w} for w in warnings]}
        if "text/plain" in req.headers.get("accept", ""):
            return 400, "\n".join(errors), {"Content-Type": "text/plain"}
        raise HubError(400, "; ".join(errors), errors=[{"message": e} for e in errors], warnings=[])

    # ---- read API: repo_info/model_info, list_repo_tree/list_repo_files, list_repo_refs, list_repo_commits ----
    def repo_info(self, req: Request, m: dict):
        """`model_info`/`dataset_info`/`space_info` (also at `/revision/{rev}`); `?blobs=True` adds file metadata."""
        repo = self._repo(req, m)
        commit = self._commit_at(repo, m["rev"] or "main")
        blobs = req.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, e in sorted(commit.files.items()):
            s: dict = {"rfilename": path}
            if blobs:
                s.update(size=e.size, blobId=e.oid)
                if e.lfs:
                    s["lfs"] = {"size": e.size, "sha256": e.sha256, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
            siblings.append(s)
        readme = commit.files.get("README.md")
        try:
            card = front_matter(self._blob(readme.sha256).read_text(encoding="utf-8")) if readme else None
        except yaml.YAMLError:
            card = None
        card = card if isinstance(card, dict) else {}
        tags = [t for t in card.get("tags") or [] if isinstance(t, str)] if isinstance(card.get("tags"), list) else []
        tags += [card["library_name"]] if isinstance(card.get("library_name"), str) else []
        tags += [f"license:{card['license']}"] if isinstance(card.get("license"), str) else []
        info = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id, "author": repo.namespace,
            "sha": commit.id, "lastModified": commit.date, "createdAt": repo.created, "private": repo.private,
            "gated": "auto" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0, "tags": tags,
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.files.values()),
        }  # fmt: skip
        if card:
            info["cardData"] = card
        if repo.type == "model":
            info.update({k: card[k] for k in ("pipeline_tag", "library_name") if isinstance(card.get(k), str)})
        if repo.type == "space":
            info["sdk"] = repo.sdk
        return info

    def tree(self, req: Request, m: dict):
        """`list_repo_tree` (hence `list_repo_files`, `snapshot_download`); one page, no `Link` header."""
        repo = self._repo(req, m)
        commit = self._commit_at(repo, m["rev"])
        base = (m["path"] or "").strip("/")
        prefix = f"{base}/" if base else ""
        recursive = req.query.get("recursive", "").lower() in ("1", "true")
        files = {p: e for p, e in commit.files.items() if p.startswith(prefix)}
        if base and not files:
            raise HubError(404, f"{base} not found", "EntryNotFound", headers={"X-Repo-Commit": commit.id})
        dirs = {str(d) for p in files for d in Path(p).parents if str(d).startswith(prefix) and str(d) != "."}
        out = []
        for d in sorted(dirs):
            if recursive or "/" not in d[len(prefix) :]:
                oid = hashlib.sha1(f"{commit.id}{d}".encode()).hexdigest()
                out.append({"type": "directory", "oid": oid, "size": 0, "path": d})
        for p, e in sorted(files.items()):
            if recursive or "/" not in p[len(prefix) :]:
                item = {"type": "file", "oid": e.oid, "size": e.size, "path": p}
                if e.lfs:
                    item["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
                out.append(item)
        return out

    def refs(self, req: Request, m: dict):
        """`list_repo_refs`: branches and tags (`converts` empty; `pullRequests` empty when asked)."""
        repo = self._repo(req, m)
        out: dict = {"converts": []}
        for key, kind, refs in (("branches", "heads", repo.branches), ("tags", "tags", repo.tags)):
            out[key] = [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": c} for n, c in sorted(refs.items())]
        if req.query.get("include_prs"):
            out["pullRequests"] = []
        return out

    def commits(self, req: Request, m: dict):
        """`list_repo_commits`: newest first, following parents from the revision."""
        repo = self._repo(req, m)
        commit: Commit | None = self._commit_at(repo, m["rev"])
        out = []
        while commit is not None:
            c = commit
            out.append(
                {"id": c.id, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
            )
            commit = repo.commit(commit.parent) if commit.parent else None
        return out

    # ---- uploads: create_commit / upload_folder / upload_file ----
    def preupload(self, req: Request, m: dict):
        """`_fetch_upload_modes`: "lfs" for .gitattributes LFS patterns, binary samples and files of 10 MB or more,
        else "regular"; `oid` of the file at the revision (sha256 if stored in LFS, else git blob id), from which the
        client drops unchanged files and skips the commit if nothing is left."""
        repo = self._repo(req, m, write=True)
        commit = self._commit_at(repo, m["rev"])
        body = req.json()
        gitattributes = commit.files.get(".gitattributes")
        text = self._blob(gitattributes.sha256).read_text() if gitattributes else ""
        patterns = [ln.split()[0] for ln in text.splitlines() if "filter=lfs" in ln]
        ignore = [ln.strip() for ln in (body.get("gitIgnore") or "").splitlines() if ln.strip() and ln[0] != "#"]
        out = []
        for f in body["files"]:
            path, sample = f["path"], base64.b64decode(f.get("sample", ""))
            lfs = f["size"] >= LFS_THRESHOLD or b"\0" in sample or _matches(path, patterns)
            entry = commit.files.get(path)
            oid = None if entry is None else entry.sha256 if entry.lfs else entry.oid
            item = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": _matches(path, ignore)}
            out.append({**item, "oid": oid})
        return {"files": out, "commitOid": commit.id}

    def commit(self, req: Request, m: dict):
        """`_send_commit`: ndjson header, file (base64), lfsFile (already uploaded), deletedFile, deletedFolder.
        Everything is checked before anything is written; answers `commitOid` and `commitUrl`."""
        repo = self._repo(req, m, write=True)
        if req.query.get("create_pr"):
            raise HubError(400, "create_pr is not supported by the test Hub")
        branch = m["rev"]
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        lines = [json.loads(ln) for ln in req.body.splitlines() if ln.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line must be the commit header")
        header = lines[0]["value"]
        with self.lock:
            head = repo.commit(repo.branches[branch])
            if header.get("parentCommit") not in (None, head.id):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files, new_blobs = dict(head.files), {}
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[path] = Entry.of(data)
                    new_blobs[files[path].sha256] = data
                elif key == "lfsFile":
                    blob = self._blob(value["oid"])
                    if not blob.exists() or value.get("size", blob.stat().st_size) != blob.stat().st_size:
                        raise HubError(400, f"LFS object {value['oid']} for {path} was not uploaded")
                    files[path] = Entry.lfs_file(value["oid"], blob.stat().st_size)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    gone = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                    if not gone:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            for data in new_blobs.values():
                self._store(data)
            message = header.get("description", "")
            commit = self._new_commit(repo, branch, files, header["summary"], message, req.user.name)
        url = f"{self.url}/{PREFIX[repo.type]}{repo.id}/commit/{commit.id}"
        return {"success": True, "commitOid": commit.id, "commitUrl": url, "hookOutput": ""}

    def lfs_batch(self, req: Request, m: dict):
        """LFS batch API (`post_lfs_batch_info`, with `HF_HUB_DISABLE_XET=1`): basic transfer with a one-time PUT URL
        per missing object (no verify action); objects already stored get no `actions` and are not uploaded again."""
        self._repo(req, m, write=True)
        out = []
        for obj in req.json()["objects"]:
            oid, size = obj["oid"], obj["size"]
            item: dict = {"oid": oid, "size": size, "authenticated": True}
            if not self._blob(oid).exists():
                ticket = secrets.token_hex(16)
                with self.lock:
                    self.tickets[ticket] = (oid, size)
                item["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{ticket}"}}
            out.append(item)
        answer = {"transfer": "basic", "objects": out, "hash_algo": "sha256"}
        return 200, answer, {"Content-Type": "application/vnd.git-lfs+json"}

    def lfs_put(self, req: Request, m: dict):
        """The pre-signed upload URL (`_upload_single_part`): no auth header, the ticket is the credential."""
        with self.lock:
            ticket = self.tickets.pop(m["ticket"], None)
        if ticket is None:
            raise HubError(403, "Unknown or used upload ticket")
        if (hashlib.sha256(req.body).hexdigest(), len(req.body)) != ticket:
            raise HubError(400, "Uploaded content does not match the announced oid and size")
        self._store(req.body)
        return 200, b"", {"ETag": f'"{ticket[0]}"'}

    def create_tag(self, req: Request, m: dict):
        """`HfApi.create_tag`: 409 if the tag exists."""
        repo = self._repo(req, m, write=True)
        commit = self._commit_at(repo, m["rev"])
        tag = req.json()["tag"]
        with self.lock:
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = commit.id
        return {}

    # ---- downloads: hf_hub_download, snapshot_download, from_pretrained (HEAD then GET, no redirect) ----
    def resolve(self, req: Request, m: dict):
        """`/{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag` (git blob id), `X-Linked-Etag` (sha256) and
        `X-Linked-Size` for LFS files; 404 `EntryNotFound` (with `X-Repo-Commit`) or `RevisionNotFound`."""
        if any(part in m["path"] for part in self.unreachable):
            raise HubError(503, "Service Unavailable")  # a network drop while this file is read
        repo = self._repo(req, m)
        if repo.gated and not (req.user and req.user.member(repo.namespace)):
            what = f"Access to {repo.type} {repo.id} is restricted"
            if req.user is None:
                raise HubError(
                    401, f"{what}. You must have access to it and be authenticated to access it.", "GatedRepo"
                )
            raise HubError(403, f"{what} and you are not in the authorized list.", "GatedRepo")
        commit = self._commit_at(repo, m["rev"])
        entry = commit.files.get(m["path"])
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.id})
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.oid}"', "Content-Length": str(entry.size)}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        if req.method == "HEAD":
            return 200, b"", headers
        data = self._blob(entry.sha256).read_bytes()
        wanted = RANGE.fullmatch(req.headers.get("range", ""))
        if wanted is None:
            return 200, data, headers
        # A byte range (as fsspec/HfFileSystem reads parquet footers): `bytes=a-b`, `bytes=a-` or `bytes=-n`.
        first, last = wanted.groups()
        start, end = (max(len(data) - int(last), 0), len(data) - 1) if not first else (
            int(first), min(int(last), len(data) - 1) if last else len(data) - 1)  # fmt: skip
        headers |= {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Content-Length": str(end - start + 1)}
        return 206, data[start : end + 1], headers

    # ---- collections: create_collection / add_collection_item / get_collection ----
    def create_collection(self, req: Request, m: dict):
        """409 with the existing `slug` for the same namespace and title (`exists_ok=True` then fetches it)."""
        body = req.json()
        self._check_write(req, body["namespace"])
        with self.lock:
            for c in self.collections.values():
                if c["owner"]["name"] == body["namespace"] and c["title"] == body["title"]:
                    raise HubError(409, "Collection already exists", slug=c["slug"])
            title = re.sub(r"[^a-z0-9]+", "-", body["title"].lower()).strip("-")
            slug = f"{body['namespace']}/{title}-{secrets.token_hex(12)}"
            self.collections[slug] = {
                "slug": slug, "title": body["title"], "description": body.get("description"),
                "owner": {"name": body["namespace"], "type": "user" if body["namespace"] == req.user.name else "org"},
                "items": [], "lastUpdated": now(), "position": 0, "private": bool(body.get("private")),
                "theme": "green", "upvotes": 0,
            }  # fmt: skip
            return self.collections[slug]

    def _collection(self, req: Request, slug: str) -> dict:
        c = self.collections.get(slug)
        if c is None or (c["private"] and not (req.user and req.user.member(c["owner"]["name"]))):
            raise HubError(404, "Collection not found")
        return c

    def get_collection(self, req: Request, m: dict):
        return self._collection(req, m["slug"])

    def add_collection_item(self, req: Request, m: dict):
        """409 if the item is already there; 404 if the repo it names does not exist (or is not visible)."""
        c = self._collection(req, m["slug"])
        self._check_write(req, c["owner"]["name"])
        body = req.json()
        kind, item_id = body["item"]["type"], body["item"]["id"]
        if kind in PREFIX:
            ns, _, name = item_id.partition("/")
            self._repo(req, {"tp": kind, "ns": ns, "name": name})
        with self.lock:
            if any(i["id"] == item_id and i["type"] == kind for i in c["items"]):
                raise HubError(409, "Item already in the collection")
            item = {"_id": secrets.token_hex(12), "id": item_id, "type": kind, "position": len(c["items"])}
            if body.get("note"):
                item["note"] = {"text": body["note"]}
            c["items"].append(item)
            c["lastUpdated"] = now()
            return c


def _matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path if "/" in p else path.rsplit("/", 1)[-1], p) for p in patterns)


def front_matter(content: str) -> dict | list | str | None:
    """The YAML front matter of a card (None if absent or empty); raises yaml.YAMLError."""
    match = YAML_BLOCK.search(content)
    return yaml.safe_load(match.group(2)) if match else None


def card_problems(content: str, repo_type: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a card's metadata: YAML must parse to a mapping and known keys have the Hub's types."""
    try:
        data = front_matter(content)
    except yaml.YAMLError as e:
        return [f"Invalid YAML in the metadata: {e}"], []
    if data is None:
        return [], ["empty or missing yaml metadata in repo card"]
    if not isinstance(data, dict):
        return [f'"metadata" must be an object, got {type(data).__name__}'], []

    def strings(v) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    errors = []
    for k, v in data.items():
        if k in CARD_STR and not isinstance(v, str):
            errors.append(f'"{k}" must be a string')
        elif k in CARD_STR_OR_LIST and not (isinstance(v, str) or strings(v)):
            errors.append(f'"{k}" must be a string or an array of strings')
        elif k in CARD_LIST and not isinstance(v, list):
            errors.append(f'"{k}" must be an array')
    if isinstance(data.get("tags"), list) and not strings(data["tags"]):
        errors.append('"tags" must be an array of strings')
    if isinstance(data.get("model-index"), list) and not all(isinstance(r, dict) for r in data["model-index"]):
        errors.append('"model-index" must be an array of objects')
    if repo_type == "space" and data.get("sdk") not in SDKS:
        errors.append(f'"sdk" must be one of {sorted(SDKS)}')
    return errors, []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 60

    def log_message(self, *args) -> None:  # quiet: the server keeps `log` instead
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        body = self._read_body()  # always, so that a kept-alive connection stays in sync
        status, payload, headers = 500, b"", {}
        try:
            auth = self.headers.get("Authorization")
            user = None
            if auth and not url.path.startswith("/lfs-upload/"):
                user = hub.tokens.get(auth.removeprefix("Bearer ").strip())
                if user is None:
                    raise HubError(401, INVALID_CREDENTIALS)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            for methods, pattern, name in ROUTES:
                match = re.fullmatch(pattern, url.path)
                if match and self.command in methods.split():
                    m = {k: (unquote(v) if v is not None else v) for k, v in match.groupdict().items()}
                    headers_in = {k.lower(): v for k, v in self.headers.items()}
                    req = Request(self.command, query, headers_in, body, user)
                    result = getattr(hub, name)(req, m)
                    status, payload, headers = result if isinstance(result, tuple) else (200, result, {})
                    break
            else:
                raise HubError(404, f"No route for {self.command} {url.path}")
        except HubError as e:
            headers = {"X-Error-Message": e.message, **e.extra.pop("headers", {})}
            if e.code or (e.status == 401 and e.message != INVALID_CREDENTIALS and REPO_URL.match(url.path)):
                headers["X-Error-Code"] = e.code or "RepoNotFound"  # what the client infers from a 401 on https
            status, payload = e.status, {"error": e.message, **e.extra}
        except Exception:
            hub.errors.append(traceback.format_exc())
            payload = {"error": "internal error of the test Hub"}
        self._send(hub, status, payload, headers)

    def _send(self, hub: HubServer, status: int, payload, headers: dict) -> None:
        if isinstance(payload, (dict, list)):
            data, ctype = json.dumps(payload).encode(), "application/json"
        else:
            data, ctype = (payload.encode() if isinstance(payload, str) else payload), "application/octet-stream"
        headers = {"Content-Type": ctype, "Content-Length": str(len(data)), **headers}
        self.send_response(status)
        for k, v in headers.items():  # header values: one line of latin-1
            self.send_header(k, " ".join(str(v).split()).encode("latin-1", "replace").decode("latin-1"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        with hub.lock:
            hub.log.append((self.command, self.path, status))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch


def hub_env(server: HubServer, token: str | None = None, home: str | Path | None = None) -> dict[str, str]:
    """A full environment for a client subprocess: this process's env without any HF_*/HUGGING_FACE_* variable
    (conftest sets HF_HUB_OFFLINE=1), then HF_ENDPOINT, HF_HUB_DISABLE_XET=1 (hf_xet is installed: without it the
    client would speak Xet), HF_HUB_OFFLINE=0, a fresh HF_HOME (under `server.root` unless given) and HF_TOKEN."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_", "TRANSFORMERS_OFFLINE"))}
    home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="hf-home-", dir=server.root))
    env.update(
        HF_ENDPOINT=server.url,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_OFFLINE="0",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TRANSFORMERS_NO_ADVISORY_WARNINGS="1",
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_client(code: str, env: dict[str, str], check: bool = True, timeout: float = 180):
    """Run `python -c code` (dedented) with this interpreter; with `check`, a failure raises with its stderr."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"client failed with exit code {proc.returncode}:\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(name="hub")
def hub_fixture(tmp_path):
    """Fixture `hub`: a started `HubServer` with `DEFAULT_TOKENS`; fails the test if a handler crashed. Import it as
    `from hub_server import hub_fixture  # noqa: F401` (a test parameter named like an import would be F811)."""
    with HubServer(tmp_path / "hub") as server:
        yield server
    assert not server.errors, "the test Hub crashed:\n" + "\n".join(server.errors)
