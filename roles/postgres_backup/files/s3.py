#!/usr/bin/env python
"""Copy backups between the backup volume and an S3-compatible bucket (Python 3.8+ standard
library only: AWS Signature Version 4 over http.client, path-style addressing).

    s3.py upload DIR      the newest complete backup in DIR (a NAME/ directory with SHA256SUMS),
                          unless the bucket has it already; then the oldest beyond S3_RETENTION
                          are removed from the bucket
    s3.py download DIR    backup RESTORE_NAME ("latest": the newest complete one in the bucket)
                          into DIR/NAME
    s3.py list            the complete backups in the bucket, one name a line

A backup is complete in the bucket when its SHA256SUMS is there: it is uploaded last and
removed first. Environment: S3_ENDPOINT (http[s]://host[:port]), S3_BUCKET, S3_PREFIX,
S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_RETENTION, RESTORE_NAME; S3_CA_FILE
(optional) a CA bundle for an https endpoint.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import os
import re
import ssl
import sys
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z\Z")
MARKER = "SHA256SUMS"


class S3Error(Exception):
    pass


class Bucket:
    def __init__(self) -> None:
        endpoint = urllib.parse.urlsplit(os.environ["S3_ENDPOINT"])
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise S3Error(f"S3_ENDPOINT {os.environ['S3_ENDPOINT']!r} is not an http(s) URL")
        self.scheme, self.netloc = endpoint.scheme, endpoint.netloc
        self.bucket = os.environ["S3_BUCKET"]
        self.prefix = os.environ.get("S3_PREFIX", "").strip("/")
        self.region = os.environ.get("S3_REGION") or "us-east-1"
        self.key_id = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            context = ssl.create_default_context(cafile=os.environ.get("S3_CA_FILE") or None)
            return http.client.HTTPSConnection(self.netloc, timeout=60, context=context)
        return http.client.HTTPConnection(self.netloc, timeout=60)

    def request(self, method: str, key: str = "", query: Optional[Dict[str, str]] = None,
                body: bytes = b"") -> Tuple[int, bytes]:
        path = "/" + urllib.parse.quote(self.bucket + ("/" + key if key else ""), safe="/-_.~")
        query_string = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                                for k, v in sorted((query or {}).items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {"host": self.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([method, path, query_string,
                               "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.key_id}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        connection = self._connection()
        try:
            connection.request(method, path + ("?" + query_string if query_string else ""), body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def check(self, status: int, body: bytes, what: str) -> None:
        if status >= 300:
            raise S3Error(f"{what}: HTTP {status} {body[:300].decode(errors='replace')}")

    def keys(self, prefix: str) -> List[str]:
        keys, token = [], None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            status, body = self.request("GET", query=query)
            self.check(status, body, f"listing s3://{self.bucket}/{prefix}")
            root = ET.fromstring(body)
            ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
            keys += [e.text or "" for e in root.iter(f"{ns}Key")]
            truncated = (root.findtext(f"{ns}IsTruncated") or "false") == "true"
            token = root.findtext(f"{ns}NextContinuationToken")
            if not truncated or not token:
                return keys

    def backups(self) -> List[str]:
        names = set()
        base = self.key() + "/" if self.prefix else ""
        for key in self.keys(base):
            parts = key[len(base):].split("/")
            if len(parts) == 2 and NAME.match(parts[0]) and parts[1] == MARKER:
                names.add(parts[0])
        return sorted(names)


def log(message: str) -> None:
    print(f"s3: {message}", flush=True)


def local_backups(root: str) -> List[str]:
    return sorted(n for n in os.listdir(root) if NAME.match(n) and os.path.isfile(os.path.join(root, n, MARKER)))


def upload(root: str) -> None:
    bucket = Bucket()
    names = local_backups(root)
    if not names:
        raise S3Error(f"no complete backup in {root}")
    name = names[-1]
    if name not in bucket.backups():
        files = sorted(os.listdir(os.path.join(root, name)))
        total = 0
        for file in [f for f in files if f != MARKER] + [MARKER]:
            with open(os.path.join(root, name, file), "rb") as handle:
                data = handle.read()
            status, body = bucket.request("PUT", bucket.key(name, file), body=data)
            bucket.check(status, body, f"uploading {name}/{file}")
            total += len(data)
        log(f"uploaded {name} ({total} bytes) to s3://{bucket.bucket}/{bucket.key(name)}")
    else:
        log(f"s3://{bucket.bucket}/{bucket.key(name)} is there already")
    retention = int(os.environ.get("S3_RETENTION", "0"))
    kept = bucket.backups()
    for old in kept[:-retention] if retention > 0 else []:
        keys = bucket.keys(bucket.key(old) + "/")
        for key in sorted(keys, key=lambda k: not k.endswith("/" + MARKER)):
            status, body = bucket.request("DELETE", key)
            bucket.check(status, body, f"removing {key}")
        log(f"removed {old} from the bucket (more than {retention} backups)")
    log("kept in the bucket: " + " ".join(bucket.backups()))


def download(root: str) -> None:
    bucket = Bucket()
    available = bucket.backups()
    want = os.environ.get("RESTORE_NAME") or "latest"
    if want == "latest":
        if not available:
            raise S3Error(f"REFUSED: there is no complete backup in s3://{bucket.bucket}/{bucket.key()}")
        want = available[-1]
    elif want not in available:
        raise S3Error(f"REFUSED: there is no backup {want} in s3://{bucket.bucket}/{bucket.key()};"
                      f" the backups are: {' '.join(available)}")
    target = os.path.join(root, want)
    os.makedirs(target, exist_ok=True)
    for key in bucket.keys(bucket.key(want) + "/"):
        status, body = bucket.request("GET", key)
        bucket.check(status, body, f"downloading {key}")
        with open(os.path.join(target, key.rsplit("/", 1)[1]), "wb") as handle:
            handle.write(body)
    log(f"downloaded {want} from s3://{bucket.bucket}/{bucket.key(want)}")


def main(argv: List[str]) -> int:
    try:
        if argv[1:2] == ["upload"]:
            upload(argv[2])
        elif argv[1:2] == ["download"]:
            download(argv[2])
        elif argv[1:2] == ["list"]:
            print("\n".join(Bucket().backups()))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (S3Error, OSError, KeyError, ET.ParseError) as error:
        log(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
