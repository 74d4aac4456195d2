"""Record and request ids made without a system call: well-formed, unique, new per process."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from levered_server.clock import canonical_uuid, new_record_id, new_request_id


def test_record_ids_are_canonical_version_4_uuids_and_unique():
    ids = [new_record_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert canonical_uuid(text) == text


def test_request_ids_keep_their_shape():
    ids = {new_request_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_worker_does_not_repeat_its_parents_ids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_record_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    mine = [new_record_id() for _ in range(5)]
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    assert len(child) == 5 and not set(child) & set(mine)
