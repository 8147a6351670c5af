"""Request ids: UUID version 4 form, unique, and never shared with a forked child."""

from __future__ import annotations

import os
import uuid

from cortex.observe.ids import BATCH, new_uuid4


def test_an_id_is_a_version_4_uuid_in_its_usual_form() -> None:
    given = new_uuid4()
    parsed = uuid.UUID(given)
    assert str(parsed) == given
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat_across_batches() -> None:
    ids = [new_uuid4() for _ in range(3 * BATCH + 5)]
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_its_own_ids() -> None:
    new_uuid4()  # the parent holds a batch the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id and leave at once
        os.write(write, new_uuid4().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert uuid.UUID(child).version == 4
    assert child != new_uuid4()
