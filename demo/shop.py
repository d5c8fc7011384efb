"""
pylens demo: a small order-processing service, stdlib only (CPython 3.8+).

It runs for a few seconds (PYLENS_DEMO_SECONDS, default 4) and does a mix of work a real
service does, so its flamegraph has something to say:
  - the main thread handles "requests": parse JSON, price the cart in pure Python,
    render a receipt, sign it with hashlib (C code);
  - thread "report-builder" aggregates sales statistics (sorting, statistics);
  - thread "cache-refresher" mostly sleeps (idle: shown with --idle);
  - thread "audit-log" waits on a queue (idle as well).
"""
import hashlib
import json
import os
import queue
import random
import statistics
import threading
import time

SECONDS = float(os.environ.get("PYLENS_DEMO_SECONDS", "4"))
DEADLINE = time.monotonic() + SECONDS
rng = random.Random(42)

CATALOG = {f"sku-{i}": round(rng.uniform(1, 200), 2) for i in range(500)}


def make_request():
    items = [{"sku": rng.choice(list(CATALOG)), "qty": rng.randint(1, 5)} for _ in range(40)]
    return json.dumps({"customer": rng.randint(1, 10_000), "items": items, "coupon": "SAVE10"})


def parse_request(body):
    return json.loads(body)


def apply_discounts(total, coupon):
    # deliberately slow pure-Python loop: the hot spot of the demo
    discount = 0.0
    for step in range(2_000):
        discount += (total * 0.0001) / (1 + step % 7)
    return total - (discount if coupon == "SAVE10" else 0.0)


def price_cart(order):
    subtotal = 0.0
    for item in order["items"]:
        subtotal += CATALOG[item["sku"]] * item["qty"]
    return apply_discounts(subtotal, order.get("coupon"))


def render_receipt(order, total):
    lines = [f"{it['qty']:>3} x {it['sku']:<10} {CATALOG[it['sku']]:>8.2f}" for it in order["items"]]
    lines.append(f"TOTAL {total:>20.2f}")
    return "\n".join(lines)


def sign(receipt):
    digest = receipt.encode()
    for _ in range(200):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def handle_request(body, audit):
    order = parse_request(body)
    total = price_cart(order)
    receipt = render_receipt(order, total)
    audit.put(sign(receipt))
    return total


def report_builder(sales):
    while time.monotonic() < DEADLINE:
        snapshot = sorted(sales[-5000:])
        if len(snapshot) > 2:
            statistics.median(snapshot)
            statistics.pstdev(snapshot)
        time.sleep(0.005)


def cache_refresher():
    while time.monotonic() < DEADLINE:
        time.sleep(0.25)
        dict(CATALOG)


def audit_log(audit):
    while True:
        entry = audit.get()
        if entry is None:
            return


def main():
    sales = []
    audit = queue.Queue()
    threads = [
        threading.Thread(target=report_builder, args=(sales,), name="report-builder"),
        threading.Thread(target=cache_refresher, name="cache-refresher"),
        threading.Thread(target=audit_log, args=(audit,), name="audit-log"),
    ]
    for t in threads:
        t.start()
    served = 0
    while time.monotonic() < DEADLINE:
        sales.append(handle_request(make_request(), audit))
        served += 1
    audit.put(None)
    for t in threads:
        t.join()
    print(f"demo: served {served} orders in {SECONDS:.0f} s")


if __name__ == "__main__":
    main()
