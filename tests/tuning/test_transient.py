"""Transient attributes: made on first use, left out of the pickle, made again after it."""

import pickle
import threading

from tuning.transient import Transients, transient


class Holder(Transients):
    def __init__(self) -> None:
        self.name = "kept"
        self.made = 0

    @transient
    def lock(self) -> threading.Lock:  # a Lock does not pickle
        self.made += 1
        return threading.Lock()


def test_a_transient_is_made_once_left_out_of_the_pickle_and_made_again_after():
    holder = Holder()
    assert holder.lock is holder.lock and holder.made == 1
    copy = pickle.loads(pickle.dumps(holder))
    assert copy.name == "kept" and "lock" not in copy.__dict__
    assert isinstance(copy.lock, type(threading.Lock())) and copy.made == 2


def test_assigning_a_transient_sets_it():
    holder, lock = Holder(), threading.Lock()
    holder.lock = lock
    assert holder.lock is lock and holder.made == 0
