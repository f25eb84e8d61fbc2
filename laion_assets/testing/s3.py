"""A real S3 API on 127.0.0.1: moto's server mode on a free port, with credentials for it.

`with moto_s3() as s3:` gives `s3.endpoint_url`, `s3.env` (the variables the pipeline reads) and
`s3.client()`; buckets are created with `s3.create_bucket(name)`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "laion-test-key-id",
    "AWS_SECRET_ACCESS_KEY": "laion-test-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MotoS3:
    endpoint_url: str

    @property
    def env(self) -> dict[str, str]:
        return {**TEST_CREDENTIALS, "LAION_S3_ENDPOINT_URL": self.endpoint_url}

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def moto_s3() -> Iterator[MotoS3]:
    """moto's ThreadedMotoServer on 127.0.0.1 and a free port, stopped on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    # moto's server refuses nothing, but botocore still looks for credentials and a region.
    for k, v in TEST_CREDENTIALS.items():
        os.environ.setdefault(k, v)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
