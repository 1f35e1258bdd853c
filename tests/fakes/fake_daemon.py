"""Stands in for ``avatar-bridge`` in the TouchDesigner tests: prints its arguments, then
runs until terminated, or exits at once with the code given by ``--exit N``."""

import sys
import time

print("fake daemon argv:", " ".join(sys.argv[1:]), flush=True)
if "--exit" in sys.argv:
    print("fake daemon: failing on purpose", flush=True)
    sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]))
print("fake daemon: live", flush=True)
while True:
    time.sleep(0.05)
