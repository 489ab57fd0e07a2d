"""Helpers shared by the tests (no tests of their own), imported as ``support.<module>``.

- ``api``: workflow documents (``node``, ``link``, ``typed``, ready-made small workflows) and the
  register/execute calls through HTTP;
- ``engine``: test-only node types (probe, failing, hanging) and an app starter with them;
- ``server``: the ``aiohttp_client`` test server that uses flowengine's own connection layer;
- ``process``: a real ``python -m flowengine`` in a child process (free port, start, wait, stop);
- ``rawhttp``: requests written byte by byte, for what aiohttp's client refuses to send;
- ``websocket``: reading ``/api/events`` frames, waiting for listeners to go, a raw listener;
- ``tokens``: hand-made JWTs and bearer headers; ``webhooks``: signing webhook bodies;
- ``exposition``: a strict reader of the Prometheus text format;
- ``clock``: a clock the test moves; ``paths``: the repository and its examples;
- ``plugin_fixture``: a node plugin loaded by name through FLOWENGINE_PLUGINS.

The tests sit in folders named for the layer of flowengine they are about (``lib``, ``core``,
``runtime``, ``server``, ``nodes``; the entry points at the top). None of these folders is a
package: pytest's default ``prepend`` import mode puts ``tests/`` on ``sys.path`` when it loads
``tests/conftest.py`` (a conftest outside any package), and that is what makes ``import support``
work for the whole suite and for a single file alike. Test file names must therefore stay
unique across the folders.
"""
