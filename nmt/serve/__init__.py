"""``nmt serve``: requests (:mod:`~nmt.serve.requests`), batches (:mod:`~nmt.serve.batcher`), the HTTP application
and the page (:mod:`~nmt.serve.app`)."""
