"""Recording a drive: the recorder's threads (`recorder`), turning graded frames into findings
(`findings`, `merge`), the bounded queue between them, the lockstep replay driver and the
one-recorder-per-data-dir lock."""
