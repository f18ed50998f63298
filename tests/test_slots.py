"""MachineSlots bounds holders across processes and threads, and a killed
holder frees its slot."""
from __future__ import annotations

import multiprocessing
import threading
import time

from transforms.mailchimp.slots import MachineSlots

SIZE = 3


def _hold_many(directory, holders, peak, lock, rounds=20):
    slots = MachineSlots("acct", SIZE, directory)

    def one():
        for _ in range(rounds):
            with slots:
                with lock:
                    holders.value += 1
                    peak.value = max(peak.value, holders.value)
                time.sleep(0.002)
                with lock:
                    holders.value -= 1

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_processes_and_threads_share_one_bound(tmp_path):
    context = multiprocessing.get_context("spawn")
    holders, peak, lock = context.Value("i", 0), context.Value("i", 0), context.Lock()
    workers = [context.Process(target=_hold_many,
                               args=(str(tmp_path), holders, peak, lock))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    # 3 processes x 4 threads wanted slots; never more than SIZE at once,
    # and the bound was reached (the slots are all usable).
    assert peak.value == SIZE


def _hold_forever(directory, ready):
    slots = MachineSlots("acct", 1, directory)
    slots.__enter__()
    ready.set()
    time.sleep(600)


def test_a_killed_holder_frees_its_slot(tmp_path):
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_forever, args=(str(tmp_path), ready))
    holder.start()
    assert ready.wait(60)
    slots = MachineSlots("acct", 1, str(tmp_path))
    got = threading.Event()

    def take():
        with slots:
            got.set()

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    assert not got.wait(0.3)  # held by the other process
    holder.kill()
    holder.join()
    assert got.wait(30)
    taker.join()


def test_other_accounts_have_their_own_slots(tmp_path):
    one, other = MachineSlots("a", 1, str(tmp_path)), MachineSlots("b", 1, str(tmp_path))
    with one:
        with other:  # would wait for ever if the names shared a slot
            pass
