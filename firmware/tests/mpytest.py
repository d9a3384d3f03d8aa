# A minimal test runner for MicroPython: runs every test_* function of the given
# modules, prints one line per failure and a summary, exits 1 if anything failed.
import sys


def run(module_names):
    passed = 0
    failed = 0
    for name in module_names:
        module = __import__(name)
        for attr in sorted(dir(module)):
            if not attr.startswith("test_"):
                continue
            try:
                getattr(module, attr)()
                passed += 1
            except Exception as exc:  # report every failure, keep going
                failed += 1
                print("FAIL %s.%s: %s: %s" % (name, attr, type(exc).__name__, exc))
                sys.print_exception(exc)
    print("%d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    sys.exit(1 if run(sys.argv[1:]) else 0)
