"""Where repository bytes live.

Glossary:

* **Backend** (:mod:`.base`): the storage contract — save / load a byte range / stat / list / remove named
  files, with written guarantees (atomic visibility, read-after-write, exact ranges, NotFoundError).
* **Handle**: names one file (type + name; ``cold`` hints that a data pack may go to archive storage).
* **Backends**: :mod:`.local` (folder), :mod:`.sftp` (paramiko), :mod:`.s3` (boto3), :mod:`.memory`.
* **Wrappers** (:mod:`.wrappers`): retry, concurrency limit, read-only, dry-run; stacked in one place,
  :func:`.registry.compose`.
* **Registry** (:mod:`.registry`): ``open_backend(url, **options)``, the one list of URL schemes.
* **Test doubles are real code**: :class:`.faulty.FaultyBackend` fails, times out, truncates or corrupts on
  call N; :func:`.validate.validate_backend` checks a user's storage in a scratch location.

The engine imports :mod:`.base` and :mod:`.registry`; nothing here imports the engine.
"""
