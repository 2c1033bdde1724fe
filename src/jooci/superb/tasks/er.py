"""ER: emotion / speaking-style recognition. Mean pooling + linear over the weighted sum (s3prl's
``emotion`` head), accuracy on speakers the head never trained on (JOOCI-synth's held-out
speakers; IEMOCAP's left-out session)."""

from __future__ import annotations

from jooci.superb.tasks.sid import PooledClassifierTask


class ERTask(PooledClassifierTask):
    name = "er"
    label_field = "style"
