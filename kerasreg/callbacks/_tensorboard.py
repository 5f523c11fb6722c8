"""A TensorBoard event writer that needs neither TensorFlow nor a backend.

`keras.callbacks.TensorBoard` writes through `tf.summary`, so it needs
TensorFlow, which the jax GPU machines do not have. This writer uses only the
`tensorboard` package's own event-file writer and protocol buffers (as
PyTorch's `SummaryWriter` does), so the monitors log the same way on every
backend.
"""

import numpy as np


class SummaryWriter:
    """Writes scalars and histograms to a TensorBoard event file in `logdir`."""

    def __init__(self, logdir):
        try:
            from tensorboard.compat.proto import event_pb2
            from tensorboard.compat.proto import summary_pb2
            from tensorboard.summary.writer.event_file_writer import (
                EventFileWriter,
            )
        except ImportError as e:  # pragma: no cover - depends on the env
            raise ImportError(
                "Writing TensorBoard logs (`log_dir=...`) needs the "
                "`tensorboard` package: `pip install tensorboard` "
                "(or `pip install kerasreg[tuner]`)."
            ) from e
        self._event_pb2 = event_pb2
        self._summary_pb2 = summary_pb2
        self._writer = EventFileWriter(str(logdir))

    def _add(self, value, step):
        summary = self._summary_pb2.Summary(value=[value])
        event = self._event_pb2.Event(summary=summary, step=int(step))
        import time

        event.wall_time = time.time()
        self._writer.add_event(event)

    def scalar(self, tag, value, step):
        self._add(
            self._summary_pb2.Summary.Value(tag=tag, simple_value=float(value)),
            step,
        )

    def histogram(self, tag, values, step, bins=30):
        values = np.asarray(values, dtype="float64").ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        counts, edges = np.histogram(values, bins=bins)
        histo = self._summary_pb2.HistogramProto(
            min=float(values.min()),
            max=float(values.max()),
            num=float(values.size),
            sum=float(values.sum()),
            sum_squares=float(np.sum(values**2)),
            bucket_limit=[float(e) for e in edges[1:]],
            bucket=[float(c) for c in counts],
        )
        self._add(self._summary_pb2.Summary.Value(tag=tag, histo=histo), step)

    def flush(self):
        self._writer.flush()

    def close(self):
        self._writer.close()
