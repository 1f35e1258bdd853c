"""Stand-in for ``scope.core.pipelines.artifacts``: model files Scope downloads before loading."""

from pydantic import BaseModel


class Artifact(BaseModel):
    """Base class of every artifact."""


class HuggingfaceRepoArtifact(Artifact):
    """Files (or folders) of a Hugging Face repo; Scope puts them in ``<models>/<repo name>/``."""

    repo_id: str
    files: list[str]


class GoogleDriveArtifact(Artifact):
    """A Google Drive file, optionally a ZIP from which ``files`` are extracted."""

    file_id: str
    files: list[str] | None = None
    name: str | None = None
