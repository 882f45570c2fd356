"""The job runner that studies and searches share.

A *job* is whatever a caller hands a worker: one run of a study (cifarlab.studies.runner),
or one whole search worker (cifarlab.tune.worker). Studies and tune both run their jobs
through this package, so that they follow one set of rules:

- :mod:`cifarlab.jobs.pool`: the jobs/threads/device policy and the process pool with its
  death rules;
- :mod:`cifarlab.jobs.training`: one training job: the run's train.log, and the data loaded
  once per process;
- :mod:`cifarlab.jobs.directory`: a study's or search's directory as jobs share it: the
  check that it holds this study or search and no other, and its append-only log.

Only :mod:`~cifarlab.jobs.training` imports the training loop; the others stay light.
"""
