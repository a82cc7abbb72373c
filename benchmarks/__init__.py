"""Development tools run from the repository: benchmarks and cost measurements (not part of the bundle or its
release zip). Each is a script (``cd bundle && python ../benchmarks/<name>.py ...``); the tests import them too."""
