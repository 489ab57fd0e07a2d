"""Helpers shared by the tests (no tests of their own), imported as ``support.<module>``.

- ``api``: workflow documents (``node``, ``link``) and the register/execute calls through HTTP;
- ``engine``: test-only node types (probe, failing, hanging) and an app starter with them;
- ``server``: the ``aiohttp_client`` test server that uses flowengine's own connection layer;
- ``process``: a real ``python -m flowengine`` in a child process (start, wait, stop);
- ``webhooks``: signing webhook bodies the way a sender would;
- ``plugin_fixture``: a node plugin loaded by name through FLOWENGINE_PLUGINS.

``tests/conftest.py`` makes ``tests/`` importable (pytest's default ``prepend`` import mode puts
the directory of a conftest that is not inside a package on ``sys.path``), so ``import support`` works both for the
whole suite and for a single test file.
"""
