// The native dispatcher: a LoadGen SUT whose queue, batching and stream workers live outside Python.
//
// LoadGen calls IssueQuery on its own issue thread. The Python binding's SUTs take the GIL there for
// every query (to build two lists and call a Python function), so every query competes with the
// backend's Python for the interpreter. This SUT takes no GIL on the issue path: IssueQuery appends the
// samples to a C++ queue under a mutex and returns. `streams` worker threads form batches (up to
// `max_batch` samples, waiting at most `max_wait_us` after the oldest one arrived for a batch to fill)
// and call the Python `run_batch(ids, indices, stream)` once per batch, holding the GIL only for that
// call. The same queue also takes queries from Python (`issue`), for a FastSUT callback and for tests.
//
// With one stream and batches of one (`run_inline`) there is nothing to batch and nothing to run beside
// the issuing: IssueQuery then runs each sample itself, on LoadGen's issue thread (the thread that
// called StartTest, so it has a Python thread state already), with no queue and no worker thread. On a
// 2-core host a worker thread is a third busy thread beside LoadGen's issue and logging threads, and the
// scheduler's time slices then show up as milliseconds in the tail latency. Given `run_one(id, index)`,
// an inline sample is handed over as two integers rather than two one-element lists (the adapter's
// run_one then skips the steps a batch needs: ~0.7 of ~1.7 us a query in Python, measured).
//
// The object is handed to `mlperf_loadgen.StartTestWithLogSettings` as its `sut` handle. The binding
// reinterprets that handle as a pointer to its own SystemUnderTest subclass and passes it to
// `mlperf::StartTest(SystemUnderTest*, ...)`, which calls only the virtual interface below; the class
// here declares that interface exactly as LoadGen 6.0.17 declares it (loadgen/system_under_test.h and
// loadgen/query_sample.h in github.com/mlcommons/inference), so LoadGen's virtual calls land here.
// scenarios/native.py uses this module only with the LoadGen version whose headers were checked.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mlperf {

// Layout and virtual interface as LoadGen 6.0.17 declares them (see above): a response id is a
// uintptr_t, a sample index a size_t; the SUT has a virtual destructor, Name, IssueQuery, FlushQueries.
struct QuerySample {
  uintptr_t id;
  size_t index;
};

class SystemUnderTest {
 public:
  virtual ~SystemUnderTest() {}
  virtual const std::string& Name() = 0;
  virtual void IssueQuery(const std::vector<QuerySample>& samples) = 0;
  virtual void FlushQueries() = 0;
};

}  // namespace mlperf

namespace {

using Clock = std::chrono::steady_clock;

struct Pending {
  uintptr_t id;
  size_t index;
  Clock::time_point arrived;
};

class Batcher final : public mlperf::SystemUnderTest {
 public:
  Batcher(PyObject* run_batch, PyObject* run_one, size_t max_batch, int64_t max_wait_us, std::string name,
          bool run_inline)
      : run_batch_(run_batch), run_one_(run_one), max_batch_(max_batch),
        max_wait_(std::chrono::microseconds(max_wait_us)), name_(std::move(name)), inline_(run_inline) {
    Py_INCREF(run_batch_);
    Py_XINCREF(run_one_);
  }

  ~Batcher() override {}

  const std::string& Name() override { return name_; }

  void IssueQuery(const std::vector<mlperf::QuerySample>& samples) override {
    if (inline_) {
      RunInline(samples);
      return;
    }
    Clock::time_point now = Clock::now();
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      size_t before = queue_.size();
      for (const auto& s : samples) queue_.push_back(Pending{s.id, s.index, now});
      issued_ += samples.size();
      flushing_ = false;  // a new series began (SubmissionRun issues accuracy, then performance)
      // A worker needs waking only when the queue stops being empty (idle workers wait for that) or a
      // batch becomes full (a worker waiting for it to fill stops waiting); any other arrival changes
      // nothing a worker waits on, so it costs no wake-up.
      wake = before == 0 || (before < max_batch_ && queue_.size() >= max_batch_);
    }
    if (wake) ready_.notify_one();
  }

  void FlushQueries() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      flushing_ = true;  // what is queued now is all that comes: partial batches need not wait
    }
    ready_.notify_all();
  }

  void Issue(const std::vector<mlperf::QuerySample>& samples) { IssueQuery(samples); }

  void Start(int streams) {
    if (inline_) return;
    for (int k = 0; k < streams; ++k) workers_.emplace_back(&Batcher::Work, this, k);
  }

  // Stop the workers once the queue is empty; call without the GIL (workers need it to finish).
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    ready_.notify_all();
    for (auto& w : workers_) {
      if (w.joinable()) w.join();
    }
    workers_.clear();
  }

  PyObject* run_batch() const { return run_batch_; }

  uint64_t issued() const { return issued_; }
  uint64_t batches() const { return batches_; }
  uint64_t failed_batches() const { return failed_; }

  void ReleaseCallback() {
    Py_CLEAR(run_batch_);
    Py_CLEAR(run_one_);
  }

 private:
  // Up to max_batch queued samples once the batch is full, or its oldest sample waited max_wait, or
  // the queries were flushed; false when closing with nothing queued. Never an empty batch.
  bool Take(std::vector<Pending>* out) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      while (queue_.empty()) {
        if (closing_) return false;
        ready_.wait(lock);
      }
      while (!queue_.empty() && queue_.size() < max_batch_ && !closing_ && !flushing_) {
        Clock::time_point deadline = queue_.front().arrived + max_wait_;
        if (Clock::now() >= deadline) break;
        ready_.wait_until(lock, deadline);
      }
      if (queue_.empty()) continue;  // another stream took what this one waited for
      PopBatch(lock, out);
      return true;
    }
  }

  // Moves up to max_batch queued samples (the queue is not empty) into `out`, then unlocks and lets
  // another stream start on what is left.
  void PopBatch(std::unique_lock<std::mutex>& lock, std::vector<Pending>* out) {
    size_t n = queue_.size() < max_batch_ ? queue_.size() : max_batch_;
    out->assign(queue_.begin(), queue_.begin() + n);
    queue_.erase(queue_.begin(), queue_.begin() + n);
    ++batches_;
    bool more = !queue_.empty();
    lock.unlock();
    if (more) ready_.notify_one();
  }

  // Each sample as its own batch on stream 0, on the calling thread, holding the GIL for the call.
  void RunInline(const std::vector<mlperf::QuerySample>& samples) {
    PyGILState_STATE gil = PyGILState_Ensure();
    for (const auto& s : samples) {
      bool ok;
      if (run_one_ != nullptr) {
        ok = CallOne(s);
      } else {
        inline_batch_[0] = Pending{s.id, s.index, Clock::now()};
        ok = Call(inline_batch_, 0);
      }
      ++issued_;  // counters are atomic: the issue path takes no lock
      ++batches_;
      if (!ok) ++failed_;
    }
    PyGILState_Release(gil);
  }

  // A batch that is ready now (full, or its wait is over, or the queries were flushed), without
  // waiting; false when there is none.
  bool TakeReady(std::vector<Pending>* out) {
    std::unique_lock<std::mutex> lock(mu_);
    if (queue_.empty()) return false;
    if (queue_.size() < max_batch_ && !closing_ && !flushing_ &&
        Clock::now() < queue_.front().arrived + max_wait_) {
      return false;
    }
    PopBatch(lock, out);
    return true;
  }

  // Each worker keeps one Python thread state for its life (creating one per batch would cost more
  // than the call). It takes the GIL for a batch and keeps it while more batches are ready at once
  // (a backlog of small batches costs one GIL hand-off, not one per batch); Python's switch interval
  // still lets another stream's worker in.
  void Work(int stream) {
    PyGILState_STATE gil = PyGILState_Ensure();
    PyThreadState* state = PyEval_SaveThread();
    std::vector<Pending> batch;
    batch.reserve(max_batch_);
    while (Take(&batch)) {
      PyEval_RestoreThread(state);
      do {
        if (!Call(batch, stream)) ++failed_;
      } while (TakeReady(&batch));
      state = PyEval_SaveThread();
    }
    PyEval_RestoreThread(state);
    PyGILState_Release(gil);
  }

  // run_batch(ids, indices, stream) with the GIL held; false if it raised (the error is printed as
  // unraisable: the Python side never raises, since an exception must not reach LoadGen).
  bool Call(const std::vector<Pending>& batch, int stream) {
    Py_ssize_t n = static_cast<Py_ssize_t>(batch.size());
    PyObject* ids = PyList_New(n);
    PyObject* indices = PyList_New(n);
    PyObject* stream_obj = PyLong_FromLong(stream);
    bool ok = ids != nullptr && indices != nullptr && stream_obj != nullptr;
    for (Py_ssize_t i = 0; ok && i < n; ++i) {
      PyObject* id = PyLong_FromSize_t(batch[i].id);
      PyObject* index = PyLong_FromSize_t(batch[i].index);
      if (id == nullptr || index == nullptr) {
        Py_XDECREF(id);
        Py_XDECREF(index);
        ok = false;
        break;
      }
      PyList_SET_ITEM(ids, i, id);
      PyList_SET_ITEM(indices, i, index);
    }
    if (ok && run_batch_ != nullptr) {
      PyObject* args[3] = {ids, indices, stream_obj};
      PyObject* result = PyObject_Vectorcall(run_batch_, args, 3, nullptr);
      ok = result != nullptr;
      Py_XDECREF(result);
    } else {
      ok = false;
    }
    if (!ok && PyErr_Occurred()) PyErr_WriteUnraisable(run_batch_);
    Py_XDECREF(ids);
    Py_XDECREF(indices);
    Py_XDECREF(stream_obj);
    return ok;
  }

  // run_one(id, index) with the GIL held; false if it raised (printed as unraisable, as for Call).
  bool CallOne(const mlperf::QuerySample& sample) {
    PyObject* args[2] = {PyLong_FromSize_t(sample.id), PyLong_FromSize_t(sample.index)};
    bool ok = false;
    if (args[0] != nullptr && args[1] != nullptr && run_one_ != nullptr) {
      PyObject* result = PyObject_Vectorcall(run_one_, args, 2, nullptr);
      ok = result != nullptr;
      Py_XDECREF(result);
    }
    if (!ok && PyErr_Occurred()) PyErr_WriteUnraisable(run_one_);
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    return ok;
  }

  PyObject* run_batch_;
  PyObject* run_one_;  // may be null: inline samples then go through run_batch as batches of one
  const size_t max_batch_;
  const std::chrono::microseconds max_wait_;
  const std::string name_;
  const bool inline_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<Pending> queue_;
  std::vector<Pending> inline_batch_ = std::vector<Pending>(1);  // only the issue thread uses it
  std::vector<std::thread> workers_;
  bool closing_ = false;
  bool flushing_ = false;
  std::atomic<uint64_t> issued_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> failed_{0};
};

// ---------------------------------------------------------------- the Python type

struct BatcherObject {
  PyObject_HEAD
  Batcher* batcher;
  bool closed;
};

void CloseObject(BatcherObject* self) {
  if (self->batcher == nullptr || self->closed) return;
  self->closed = true;
  Batcher* b = self->batcher;
  Py_BEGIN_ALLOW_THREADS
  b->Close();
  Py_END_ALLOW_THREADS
}

int Batcher_init(BatcherObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"run_batch", "max_batch", "streams", "max_wait_us", "name", "run_inline",
                                 "run_one", nullptr};
  PyObject* run_batch;
  PyObject* run_one = Py_None;
  Py_ssize_t max_batch, streams;
  long long max_wait_us;
  const char* name = "mlperf-ext native batcher";
  int run_inline = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnL|spO", const_cast<char**>(kwlist), &run_batch,
                                   &max_batch, &streams, &max_wait_us, &name, &run_inline, &run_one)) {
    return -1;
  }
  if (run_one != Py_None && !PyCallable_Check(run_one)) {
    PyErr_SetString(PyExc_TypeError, "run_one must be callable or None");
    return -1;
  }
  if (run_inline && (max_batch != 1 || streams != 1)) {
    PyErr_SetString(PyExc_ValueError, "run_inline needs max_batch 1 and one stream");
    return -1;
  }
  if (!PyCallable_Check(run_batch)) {
    PyErr_SetString(PyExc_TypeError, "run_batch must be callable");
    return -1;
  }
  if (max_batch < 1 || streams < 1 || max_wait_us < 0) {
    PyErr_SetString(PyExc_ValueError, "max_batch and streams must be >= 1, max_wait_us >= 0");
    return -1;
  }
  if (self->batcher != nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "already initialised");
    return -1;
  }
  self->batcher = new Batcher(run_batch, run_one == Py_None ? nullptr : run_one, static_cast<size_t>(max_batch),
                              max_wait_us, name, run_inline != 0);
  self->closed = false;
  self->batcher->Start(static_cast<int>(streams));
  return 0;
}

void Batcher_dealloc(BatcherObject* self) {
  CloseObject(self);
  if (self->batcher != nullptr) {
    self->batcher->ReleaseCallback();
    delete self->batcher;
    self->batcher = nullptr;
  }
  Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

bool ReadSizes(PyObject* seq, std::vector<size_t>* out, const char* what) {
  PyObject* fast = PySequence_Fast(seq, what);
  if (fast == nullptr) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  PyObject** items = PySequence_Fast_ITEMS(fast);
  out->resize(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    size_t v = PyLong_AsSize_t(items[i]);
    if (v == static_cast<size_t>(-1) && PyErr_Occurred()) {
      Py_DECREF(fast);
      return false;
    }
    (*out)[static_cast<size_t>(i)] = v;
  }
  Py_DECREF(fast);
  return true;
}

// issue(ids, indices): queue samples from Python (a FastSUT callback's arguments).
PyObject* Batcher_issue(BatcherObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "issue(ids, indices) takes two sequences");
    return nullptr;
  }
  if (self->batcher == nullptr || self->closed) {
    PyErr_SetString(PyExc_RuntimeError, "the batcher is closed");
    return nullptr;
  }
  std::vector<size_t> ids, indices;
  if (!ReadSizes(args[0], &ids, "ids must be a sequence") ||
      !ReadSizes(args[1], &indices, "indices must be a sequence")) {
    return nullptr;
  }
  if (ids.size() != indices.size()) {
    PyErr_SetString(PyExc_ValueError, "ids and indices differ in length");
    return nullptr;
  }
  std::vector<mlperf::QuerySample> samples(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) samples[i] = mlperf::QuerySample{ids[i], indices[i]};
  self->batcher->Issue(samples);
  Py_RETURN_NONE;
}

PyObject* Batcher_flush(BatcherObject* self, PyObject*) {
  if (self->batcher != nullptr && !self->closed) self->batcher->FlushQueries();
  Py_RETURN_NONE;
}

PyObject* Batcher_close(BatcherObject* self, PyObject*) {
  CloseObject(self);
  Py_RETURN_NONE;
}

PyObject* Batcher_get_handle(BatcherObject* self, void*) {
  // the address of the SystemUnderTest base, which is what LoadGen's binding reinterprets
  mlperf::SystemUnderTest* base = self->batcher;
  return PyLong_FromVoidPtr(static_cast<void*>(base));
}

PyObject* Batcher_get_issued(BatcherObject* self, void*) {
  return PyLong_FromUnsignedLongLong(self->batcher ? self->batcher->issued() : 0);
}

PyObject* Batcher_get_batches(BatcherObject* self, void*) {
  return PyLong_FromUnsignedLongLong(self->batcher ? self->batcher->batches() : 0);
}

PyObject* Batcher_get_failed(BatcherObject* self, void*) {
  return PyLong_FromUnsignedLongLong(self->batcher ? self->batcher->failed_batches() : 0);
}

PyMethodDef kBatcherMethods[] = {
    {"issue", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Batcher_issue)), METH_FASTCALL,
     "issue(ids, indices): queue samples (a FastSUT issue callback's arguments)"},
    {"flush", reinterpret_cast<PyCFunction>(Batcher_flush), METH_NOARGS,
     "flush(): partial batches go without waiting for more samples"},
    {"close", reinterpret_cast<PyCFunction>(Batcher_close), METH_NOARGS,
     "close(): run what is queued, then stop the workers"},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kBatcherGetSet[] = {
    {"handle", reinterpret_cast<getter>(Batcher_get_handle), nullptr,
     "the SUT handle for mlperf_loadgen.StartTestWithLogSettings", nullptr},
    {"issued", reinterpret_cast<getter>(Batcher_get_issued), nullptr, "samples queued so far", nullptr},
    {"batches", reinterpret_cast<getter>(Batcher_get_batches), nullptr, "batches formed so far", nullptr},
    {"failed_batches", reinterpret_cast<getter>(Batcher_get_failed), nullptr,
     "batches whose run_batch raised", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject kBatcherType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "scenarios._native",
                       "The native dispatcher (a LoadGen SUT that batches outside Python).", -1,
                       nullptr, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__native(void) {
  kBatcherType.tp_name = "scenarios._native.Batcher";
  kBatcherType.tp_basicsize = sizeof(BatcherObject);
  kBatcherType.tp_flags = Py_TPFLAGS_DEFAULT;
  kBatcherType.tp_doc =
      "Batcher(run_batch, max_batch, streams, max_wait_us, name=..., run_inline=False, run_one=None)";
  kBatcherType.tp_new = PyType_GenericNew;
  kBatcherType.tp_init = reinterpret_cast<initproc>(Batcher_init);
  kBatcherType.tp_dealloc = reinterpret_cast<destructor>(Batcher_dealloc);
  kBatcherType.tp_methods = kBatcherMethods;
  kBatcherType.tp_getset = kBatcherGetSet;
  if (PyType_Ready(&kBatcherType) < 0) return nullptr;
  PyObject* module = PyModule_Create(&kModule);
  if (module == nullptr) return nullptr;
  Py_INCREF(&kBatcherType);
  if (PyModule_AddObject(module, "Batcher", reinterpret_cast<PyObject*>(&kBatcherType)) < 0) {
    Py_DECREF(&kBatcherType);
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
