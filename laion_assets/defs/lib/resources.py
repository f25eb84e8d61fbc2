"""Resources: configuration and long-lived clients the assets share."""

from typing import Any

import dagster as dg
from pydantic import field_validator

from dagster_aws.s3 import S3Resource

from laion_assets.core.storage import open_storage
from laion_assets.core.storage.base import Storage
from laion_assets.core.storage.s3 import S3Credentials


def s3_credentials(s3: S3Resource) -> S3Credentials:
    """The S3Resource's settings for clients other than boto3 (pyarrow, DuckDB); never logged."""
    return S3Credentials(
        endpoint_url=s3.endpoint_url,
        region=s3.region_name,
        access_key_id=s3.aws_access_key_id,
        secret_access_key=s3.aws_secret_access_key,
        session_token=s3.aws_session_token,
        anonymous=s3.use_unsigned_session,
    )


class StorageResource(dg.ConfigurableResource):
    """The storage root every stage reads and writes: a local directory, or `s3://bucket/prefix`
    through dagster-aws's `S3Resource` (credentials from `EnvVar`s, `LAION_S3_ENDPOINT_URL` for
    MinIO or moto). `cache_dir` holds local copies of S3 directories that readers need as files."""

    root: str
    s3: S3Resource | None = None  # None: boto3's default credential chain
    cache_dir: str = ""

    @field_validator("root")
    @classmethod
    def _check_root_characters(cls, root: str) -> str:
        from laion_assets.settings import check_storage_root

        return check_storage_root(root) if isinstance(root, str) else root  # named as users set it

    def get(self) -> Storage:
        def s3_client() -> tuple[Any, S3Credentials]:
            s3 = self.s3 or S3Resource()
            return s3.get_client(), s3_credentials(s3)

        return open_storage(self.root, s3=s3_client, cache_dir=self.cache_dir or None)


