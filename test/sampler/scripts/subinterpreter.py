# A subinterpreter (created with the private _xxsubinterpreters / _interpreters module)
# runs sub_sleep() in a thread while the main interpreter's main thread runs main_sleep().
# Both only sleep: on 3.9-3.11 a spinning subinterpreter starves the main one of the GIL.
import threading
import time

try:
    import _interpreters as interpreters  # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.8-3.12

interp = interpreters.create()
code = "import time\ndef sub_sleep():\n    time.sleep(60)\nsub_sleep()\n"
runner = threading.Thread(target=interpreters.run_string, args=(interp, code), name="sub-runner", daemon=True)
runner.start()


def main_sleep():
    time.sleep(60)


time.sleep(0.3)
print("ready", flush=True)
main_sleep()
