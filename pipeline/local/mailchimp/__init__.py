"""Implementation of the local Mailchimp Marketing API v3 emulator; use it
through :mod:`pipeline.local.mailchimp_emulator`. One module per job:

- ``problems``: problem+json errors; ``identity``: emails (plausible,
  fake-looking), subscriber hashes;
- ``merge_fields``: merge field types and value checks; ``tags``: audience
  and member tags; ``permissions``: marketing permissions (GDPR);
  ``bodies``: request body checks mirroring the OpenAPI document;
- ``audience``: one list's state; ``service``: the operations on it;
  ``seed``: the starting state;
- ``messages``, ``routes``, ``api``, ``sparse_fields``: requests and
  responses, path matching, the /3.0 endpoints, `fields`/`exclude_fields`;
- ``credentials``: the API key and OAuth token accepted; ``oauth``: the
  OAuth metadata endpoint;
- ``faults``, ``stats``, ``recording``, ``inspection``: injected faults,
  counters, the request log, /_emulator;
- ``gateway``: auth, the connection limit, latency and faults around the API;
  ``server``: HTTP/1.1 and the MailchimpEmulator Python API.
"""
