"""Array layout of the engine state and the numeric codes shared with Python.

The compiled engine keeps all state in a handful of ``int64`` matrices (one row per CPU, queue,
command processor, cache line) whose columns are named by the constants below, so the state can be
paused, inspected and resumed from Python, and numba can cache the compiled code on disk.
"""

from __future__ import annotations

import numpy as np

TIME_NEVER = np.iinfo(np.int64).max
#: Entity ids occupy the low bits of a scheduling key: key = time << ID_BITS | entity.
ID_BITS = 12
MAX_ENTITIES = 1 << ID_BITS
#: Largest simulated time representable in a key (about 2250 s).
MAX_TIME_PS = (1 << (63 - ID_BITS)) - 1

# ----------------------------------------------------------------------------- submission algorithms
ALG_LOCKFREE = 0  # Linux >= 5.4 arm_smmu_cmdq_issue_cmdlist (cmpxchg reservation)
ALG_ATOMIC_ADD = 1  # John Garry's 2020 variant: reservation by atomic add
ALG_SPINLOCK = 2  # Linux < 5.4: one spinlock around insertion and the SYNC wait
ALG_EXCLUSIVE = 3  # a queue owned by one CPU: no atomics
ALG_DIRECT = 4  # commands appear in the queue at arrival, no software cost, nobody waits
ALG_CAS_SLOCK = 5  # Will Deacon's 2020 alternative in John Garry's working version: cmpxchg, slock on failure
ALG_NAMES = {
    "linux-lockfree": ALG_LOCKFREE,
    "atomic-add": ALG_ATOMIC_ADD,
    "spinlock": ALG_SPINLOCK,
    "exclusive": ALG_EXCLUSIVE,
    "direct": ALG_DIRECT,
    "cas-spinlock-fallback": ALG_CAS_SLOCK,
}
#: The submission algorithms a CPU can run (``direct`` is the open-queue source, not an algorithm).
SUBMITS = tuple(name for name in ALG_NAMES if name != "direct")

# ----------------------------------------------------------------------------- cmdq->lock release
XU_NONE = 0  # the space check refreshes CONS without cmdq->lock (the model before issue 10)
XU_SET_ZERO = 1  # atomic_set_release(&lock, 0), shared_lock with its cmpxchg() loop (before 2026)
XU_CLEAR_SIGN = 2  # atomic_fetch_andnot_release(INT_MIN, &lock), shared_lock waits VAL > 0 (df180b1a4cc5)
XU_NAMES = ("none", "set-zero", "clear-sign")

# ----------------------------------------------------------------------------- cache-line arbitration
ARB_FIFO = 0  # every requester in arrival order (the model before issue 10)
ARB_HOLDER_FIRST = 1  # the holder's next access first (bounded), then the nearest requester
ARB_NAMES = ("fifo", "holder-first")
TOPO_NAMES = ("flat", "platform")  # one transfer cost / cost by cluster, die and socket
# Which fields of struct arm_smmu_cmdq share a cache line (64-byte lines, arm64):
LAYOUT_PER_FIELD = 0  # llq, lock, the valid bitmap and owner_prod each a line (the model before issue 10)
# linux-v5.9-arm-smmu-v3.c struct arm_smmu_ll_queue / arm_smmu_queue / arm_smmu_cmdq: llq's union is one
# aligned line (prod, cons; Garry's v2 keeps only sync/count/prod there and moves cons to the next line,
# beside max_n_shift), the queue's read-only fields fill the next two, and valid_map (the bitmap's
# pointer), owner_prod and lock share the line after them (offsets 192, 200, 204).
LAYOUT_V59 = 1
LAYOUT_NAMES = ("per-field", "v5.9")
# holder-first: what a plain load (READ_ONCE, atomic_read; not a cond_read, which polls with LDXR) leaves behind
LOAD_HOLDER = 0  # the holder's priority, as after an atomic (the model before)
LOAD_NONE = 1  # none: the load takes the line shared, the cmpxchg after it competes with waiting CPUs
LOAD_NAMES = ("holder", "none")
# Where the memory that homes the cmdq's lines sits (a transfer goes through the line's home node):
HOME_NEAR = 0  # transfers cost by the two CPUs' distance only (the model before; memory on every node)
HOME_OTHER_DIE = 1  # memory on die 1 (CPU 0's socket's other die): D06 "memory poor" (Garry, 13 Nov 2020)
HOME_OTHER_SOCKET = 2  # memory on the other socket's first die
HOME_NAMES = ("near", "other-die", "other-socket")

# ----------------------------------------------------------------------------- CMD_SYNC wait modes
WAIT_MSI = 0  # CS=SIG_IRQ, MSI write to the SYNC's own slot; the waiter spins on that word
WAIT_SEV = 1  # CS=SIG_SEV; WFE, woken by the SMMU's SEV, then a CONS read
WAIT_POLL = 2  # CONS polling with Linux's back-off: 10 polls then udelay(1 us), doubling
WAIT_BUSY = 3  # CS=SIG_NONE busy polling of CONS (Tegra241 VCMDQs)
WAIT_VIRQ = 4  # a VMM-emulated queue whose completion is signalled by a virtual interrupt (engine/vmm.py)
WAIT_NAMES = {"msi": WAIT_MSI, "sev": WAIT_SEV, "poll": WAIT_POLL, "busy": WAIT_BUSY, "virq": WAIT_VIRQ}

# ----------------------------------------------------------------------------- CPU program counters
PC_NEXT_OP = 0
PC_OP_BEGIN = 1
PC_BATCH_BEGIN = 2
PC_DONE = 3
PC_LF_READ = 10
PC_LF_CHECK = 11
PC_LF_FULL = 12
PC_LF_FULL_READ = 13
PC_LF_RESERVED = 14
PC_LF_WRITTEN = 15
PC_LF_SETVALID = 16
PC_LF_OWNER_WAIT = 17
PC_LF_ANDNOT = 18
PC_LF_VALID_WAIT = 19
PC_LF_DOORBELL = 20
PC_LF_DOORBELL_LAND = 21
PC_LF_SYNC = 22
PC_LF_SYNC_WAIT = 23
PC_LF_UNLOCK = 24
PC_LF_UNLOCK_CONS = 25
PC_LF_UNLOCK_DEC = 26
PC_BATCH_END = 27
PC_SL_ACQ = 30
PC_SL_GOT = 31
PC_SL_INSERT = 32
PC_SL_LAND = 33
PC_SL_WAIT = 34
PC_SL_REL = 35
PC_EX_BEGIN = 40
PC_EX_SPACE_READ = 41
PC_EX_WRITTEN = 42
PC_EX_LAND = 43
PC_EX_WAIT = 44
PC_DI_BEGIN = 50
PC_LOCK_GOT = 60  # woken holding a lock
# cmdq->lock as a shared/exclusive counter (exclusive_unlock != none; arm-smmu-v3.c "Command queue
# locking" and arm_smmu_cmdq_poll_until_not_full)
PC_XL_TRY = 70  # arm_smmu_cmdq_exclusive_trylock_irqsave: cmpxchg(&lock, 0, INT_MIN)
PC_XL_READ = 71  # holding it: readl(CONS) landed; WRITE_ONCE(llq.cons, CONS)
PC_XL_UNLOCK = 72  # arm_smmu_cmdq_exclusive_unlock_irqrestore
PC_XL_REREAD = 73  # llq->val = READ_ONCE(cmdq->q.llq.val), back to the space check
PC_PF_READ = 74  # trylock failed: queue_poll loop, llq->val = READ_ONCE(cmdq->q.llq.val)
PC_PF_CHECK = 75  # ... if (!queue_full(llq)) break; else queue_poll()
PC_SH_WAIT = 76  # arm_smmu_cmdq_shared_lock: wait for the lock to change (atomic_cond_read_relaxed)
PC_SH_READ = 77  # ... the read of that cond_read
PC_SH_CAS = 78  # set-zero (before df180b1a4cc5): cmpxchg(&lock, val, val + 1)
PC_SH_GOT = 79  # shared lock held: on to set_valid_map
# lock-free steps split so that each cache-line access starts a step (holder-first re-runs it)
PC_LF_FULL_WRITE = 90  # the CONS read saw progress: WRITE_ONCE(cmdq->q.llq.cons, CONS)
PC_LF_SHLOCK = 91  # arm_smmu_cmdq_shared_lock: atomic_fetch_inc_relaxed(&cmdq->lock)
PC_LF_OWNER_REL = 92  # atomic_set_release(&cmdq->owner_prod, prod)
PC_CS_LOCK = 93  # cas-spinlock-fallback: spin_lock(&cmdq->slock) after a failed cmpxchg
PC_CS_GOT = 94  # ... handed the slock by its previous holder
PC_CS_UNLOCK = 95  # ... spin_unlock(&cmdq->slock), then on to C_NEXT_PC
# atomic-add as John Garry's v2 wrote it (patch-2020-garry-v2-remove-cmpxchg.txt, 2/2)
PC_AA_ADD = 96  # llq.val = atomic64_fetch_add(space.val, &llq.atomic): sync, count and prod at once
PC_AA_SPACE = 97  # space.cons = READ_ONCE(llq.cons); while (!queue_has_space(&space, n + sync)) ...
PC_AA_SHLOCK = 98  # owner: arm_smmu_cmdq_shared_lock(cmdq, sync_count) for every CMD_SYNC it gathered
PC_LF_PTR = 99  # v5.9 layout: the load of cmdq->valid_map (on the lock/owner_prod line), then C_NEXT_PC
# a vCPU on a VMM-emulated queue (engine/vmm.py): PROD write and CONS reads exit to the VMM
PC_VX_PROD = 80  # trapped out of the PROD write: hand the emulation to the VMM thread
PC_VX_SYNC = 81  # CMD_SYNC not yet seen consumed: poll_until_consumed (or the virtual IRQ)
PC_VX_POLL = 82  # queue_poll: cpu_relax or udelay back-off
PC_VX_READ_EXIT = 83  # readl(CONS) traps
PC_VX_READ = 84  # trapped out of the CONS read: hand it to the VMM thread
PC_VX_CHECK = 85  # back from the CONS read
PC_STEP_END = PC_BATCH_END  # every step ends through the same bookkeeping

# ----------------------------------------------------------------------------- op program steps
# An op is a list of steps; a step is (kind, a, b, c) in the CPU's step ring.
STEP_BATCH = 0  # a = entries, b = 1 if the CPU waits for the final CMD_SYNC, c = queue
STEP_DELAY = 1  # a = duration (ps), b = counter to increment (CNT_*), c = unused
STEP_LOCK = 2  # a = lock id (FIFO mutex, e.g. a VM's QEMU big lock)
STEP_UNLOCK = 3  # a = lock id
STEP_RESUME = 4  # a = queue: its error is fixed (faulting entry becomes a CMD_SYNC); consumption resumes
# steps the engine appends to a vCPU's VMM thread (engine/vmm.py); never in an input stream
STEP_VMM_PROD = 5  # a = emulated queue, b = new PROD: the register write takes effect
STEP_VMM_DONE = 6  # a = emulated queue, b = new CONS: everything below it was consumed
STEP_VMM_READ = 7  # a = emulated queue, c = vCPU: the vCPU's CONS read returns the register
STEP_WAKE = 8  # a = vCPU, b = delay (ps), c = its program counter: back to the guest
CNT_NONE = 0
CNT_EXITS = 1  # a guest exit to the VMM (trap)
CNT_GUEST_IRQS = 2  # an interrupt injected into a guest

# ----------------------------------------------------------------------------- queue error handling
ERR_NONE = 0  # commands are never illegal here
ERR_FIXUP = 1  # ILL -> host CMDQV IRQ thread emulates the command on the host queue, rewrites, resumes
ERR_GUEST = 2  # ILL -> error forwarded to the guest (VMM event + vIRQ); the command is skipped
CMD_ILLEGAL = 1  # command flag: raises ILL on its queue

# ----------------------------------------------------------------------------- CPU state columns
C_PC = 0
C_Q = 1  # queue of the current batch
C_OPHEAD = 2  # ring counter of the current (or next) op
C_OPTAIL = 3  # ring counter one past the last loaded op
C_BCTR = 4  # ring counter of the current batch
C_BEND = 5  # ring counter one past the current op's last batch
C_BTAIL = 6
C_CCTR = 7  # ring counter of the current batch's first command
C_CTAIL = 8
C_N = 9  # entries in the current batch (including its CMD_SYNC)
C_SYNC = 10  # 1 if the batch ends with a CMD_SYNC the CPU waits for
C_START = 11  # queue counter of the batch's first slot (reservation result)
C_END = 12  # owner: end of the gathered range
C_OWNER = 13
C_SEEN_VER = 14
C_SEEN_PROD = 15
C_SEEN_CONS = 16
C_SEEN_OWNED = 17
C_RETRIES = 18  # cmpxchg failures of the current batch
C_IDX = 19  # spinlock: index of the next command to insert
C_WAIT_T0 = 20  # time the CMD_SYNC wait began
C_WAITING = 21  # 1 while blocked on its CMD_SYNC
C_SYNC_DONE = 22  # SMMU completion time of the awaited CMD_SYNC, -1 if not yet
C_T_READY = 23  # op arrival (open) or end of think time (closed)
C_T_ISSUE = 24  # time the current batch began
C_T_RESERVED = 25
C_OPID = 26
C_QUOTA = 27  # ops this CPU issues in total
C_STARTED = 28  # ops started
C_DONE_OPS = 29
C_MORE = 30  # 1 while the stream may deliver more ops for this CPU
C_T_LAST_DONE = 31
C_OP_CMDS = 32
C_OP_RETRIES = 33
C_OP_BATCHES = 34
C_OPEN = 35  # 1: op times are absolute arrivals; 0: think gaps
C_SPACE_Q = 36  # queue this CPU waits on for space, -1 if none
C_REC0 = 37  # record index of the current batch's first command, -1 if not recorded
C_SYNC_SLOT = 38
C_T_WRITTEN = 39
C_OP_SYNC_T = 40  # SMMU completion time of the op's last waited CMD_SYNC
C_KIND = 41  # kind of the current step
C_IRQ = 42  # 1 for the host IRQ thread, 2 for a vCPU's VMM thread (their ops are appended by the engine)
C_VMM = 43  # a vCPU: its VMM thread; a VMM thread: its vCPU (-1: none)
C_POLL_CNT = 44  # queue_poll spin_cnt
C_POLL_DELAY = 45  # queue_poll delay (ps)
C_VAL = 46  # value returned by the last trapped register read
C_SLW_T0 = 47  # time arm_smmu_cmdq_shared_lock began
C_CMPV = 48  # set-zero shared_lock: the lock value its cond_read returned
C_POLL_T0 = 49  # start of the current queue_poll loop, -1 if none
C_LOCK_Q = 50  # queue whose cmdq->lock this CPU waits on (shared_lock), -1 if none
C_LLQ_Q = 51  # queue whose llq this CPU polls for CONS (poll_until_not_full), -1 if none
C_LREQ_LINE = 52  # line this CPU waits to be served (holder-first), -1 if none
C_LREQ_T = 53  # time of that request
C_LGRANT = 54  # line granted to this CPU and not yet accessed, -1 if none
C_SLOCKED = 55  # cas-spinlock-fallback: 1 while this CPU holds cmdq->slock
C_NEXT_PC = 56  # where PC_CS_UNLOCK continues
C_PH_T = 57  # start of the current phase of a lock-free batch (op_phase_ns)
C_SYNC_START = 58  # time the SMMU started the CMD_SYNC this CPU waits for
C_CLUSTER = (
    59  # topology=platform: c // cluster_cpus, c // die_cpus, c // socket_cpus (set once by the driver)
)
C_DIE = 60
C_SOCKET = 61
C_LNEXT = 62  # holder-first: the next CPU waiting for the same line (C_LREQ_LINE), -1 at the end
C_LPREV = 63  # holder-first: the previous one, -1 at the head (L_WHEAD)
C_NF = 64  # rows of 512 bytes: a 65th field (520-byte rows) cost open-queue 12 % of its speed

# ----------------------------------------------------------------------------- queue state columns
Q_LOG2 = 0
Q_ALG = 1
Q_WAIT = 2
Q_PROC = 3
Q_PROD = 4  # llq.prod (monotonic counter of reserved entries)
Q_OWNED = 5  # llq OWNED flag
Q_CONS_SHADOW = 6  # llq.cons (software's shadow of CONS)
Q_VER = 7  # modifications of the llq word (a cmpxchg fails if it changed)
Q_LOCK = 8  # shared lock count (lock-free) / holder cpu (spinlock, -1 free)
Q_OWNER_PROD = 9
Q_VALID_UPTO = 10  # every slot below this counter has its valid bit set
Q_HW_PROD = 11  # PROD as the SMMU sees it
Q_FETCH = 12  # next slot the processor starts
Q_HW_CONS = 13  # CONS: slots completed
Q_OWNER_WAITER = 14
Q_VALID_WAITER = 15
Q_SPACE_WAITERS = 16
Q_SLOT_BASE = 17  # offset of this queue's slots in the slot pool
Q_FIFO_HEAD = 18  # spinlock waiters FIFO (ring over the CPU count)
Q_FIFO_TAIL = 19
Q_DOORBELLS = 20
Q_MAX_OCC = 21
Q_FETCHED = 22  # commands below this counter were read by the last burst
Q_ERR = 23  # ERR_* mode: what an illegal command does
Q_HALTED = 24  # 1 while stopped on an illegal command (CONS.ERR = ILL)
Q_ERRORS = 25
Q_VMM = 26  # 1: emulated by the VMM (consumed inside the trapped PROD write), not by the SMMU
Q_BQL = 27  # the VMM lock every exit to this emulated queue takes (-1: none)
Q_XCL = 28  # 1 while cmdq->lock is held exclusively (its sign bit); Q_LOCK holds the rest
Q_LOCK_WAITERS = 29  # CPUs blocked in shared_lock on this queue
Q_LLQ_WAITERS = 30  # CPUs blocked polling llq in poll_until_not_full
Q_SLOCK = 31  # cas-spinlock-fallback: CPU holding cmdq->slock, -1 if free (waiters: the FIFO ring)
Q_GSYNC = 32  # atomic-add: llq.sync, the CMD_SYNCs reserved since the owner last cleared the word
Q_NF = 33

# ----------------------------------------------------------------------------- processor state columns
P_STATE = 0  # P_IDLE / P_BUSY / P_HWSYNC
P_CUR = 1  # queue being consumed, -1 if none
P_TURN_CNT = 2
P_TURN_T0 = 3
P_RR = 4  # position in this processor's queue list
P_NQ = 5  # number of queues it serves
P_BUSY_PS = 6
P_T0 = 7  # start of the current command
P_HWSYNCS = 8
P_NF = 9
P_IDLE = 0
P_BUSY = 1
P_HWSYNC = 2

# ----------------------------------------------------------------------------- cache lines of a queue
LINE_LLQ = 0
LINE_LOCK = 1
LINE_VALID = 2
LINE_OWNER = 3
LINE_CONS = 4  # atomic-add (Garry's v2): llq.cons, moved out of the fetch_add word to the llq's 2nd line
LINES_PER_Q = 5
L_FREE = 0
L_OWNER = 1
L_RUN = 2  # holder-first: consecutive accesses by L_OWNER
L_NREQ = 3  # holder-first: pending requests
L_ARB = 4  # holder-first: the pending CPU that carries the next arbitration, -1 if none
L_RESV = 5  # holder-first: CPU granted the line and not yet served, -1 if none
L_ROUND = 6  # holder-first: requests made up to this time are served before later ones
L_WHEAD = 7  # holder-first: the first CPU waiting for this line (their list is in (C_LREQ_T, CPU) order), -1 if none
L_WTAIL = 8  # holder-first: the last one, -1 if none
L_NF = 9

# ----------------------------------------------------------------------------- cost vector (ps)
K_LINE_LOCAL = 0
K_LINE_XFER = 1
K_CMD_WRITE = 2
K_MMIO_WRITE = 3
K_MMIO_READ = 4
K_SPIN = 5
K_MSI = 6
K_SEV = 7
K_FETCH = 8
K_HW_SYNC = 9
K_CMD_BATCH = 10  # count, not time; 0 disables the batch limit
K_CLK_BATCH = 11  # 0 disables the time slice
K_HW_SYNC_INSERT = 12  # 0/1
K_UDELAY = 13  # first udelay of the poll back-off
K_POLL_SPINS = 14  # ARM_SMMU_POLL_SPIN_COUNT
K_RECORD = 15  # 1: keep per-command and per-op records
K_FETCH_LINE = 16  # commands per fetch burst (a 64-byte line holds 4)
K_IRQ_LATENCY = 17  # CMDQV error interrupt until the threaded handler runs
K_IRQ_HANDLER = 18  # handler reading the error maps and the faulting entry
K_IRQ_ACK = 19  # rewriting the entry and writing GERRORN
K_GUEST_ERROR = 20  # forwarding an error to the guest (event to the VMM, vIRQ, guest ISR)
K_SYNC_SVC = 21  # service of the CMD_SYNC an illegal entry is rewritten to, and of emulation SYNCs
K_HOST_QUEUE = 22  # queue the IRQ thread emulates commands on
K_IRQ_CPU = 23  # CPU index of the IRQ thread (-1: none)
K_FUTEX_WAKE = 24  # a contended FIFO lock handed over: the sleeping waiter's futex wake-up
K_TRAP = 25  # guest MMIO exit to the user-space VMM and back (half out, half back)
K_VMM_TRAP = 26  # VMM emulation of a PROD write (outside the forwarded commands)
K_VMM_READ = 27  # VMM emulation of a register read
K_VMM_PER_CMD = 28  # VMM + host kernel work per forwarded command
K_VMM_IOCTL = 29  # one IOMMU_HWPT_INVALIDATE ioctl round trip
K_VMM_BATCHED = 30  # 0: one ioctl per command (QEMU accel); 1: one ioctl per consumed range
K_VMM_CHUNK = 31  # commands per host batch (+ CMD_SYNC) of a forwarded array
K_VIRQ = 32  # a virtual interrupt delivered to the guest
K_EXCL_UNLOCK = 33  # XU_*: how cmdq->lock's exclusive holder releases it
K_LINE_ARB = 34  # ARB_*
K_LINE_HOLD_MAX = 35  # holder-first: accesses in a row the holder may make ahead of others
K_LINE_HOLD = 36  # holder-first: time after its access the holder keeps priority
K_TOPOLOGY = 37  # 0 flat, 1 platform (cluster/die/socket)
K_CLUSTER_CPUS = 38
K_DIE_CPUS = 39
K_SOCKET_CPUS = 40
K_XFER_CLUSTER = 41  # line transfer within a cluster
K_XFER_DIE = 42  # ... within a die
K_XFER_XDIE = 43  # ... to the other die of the socket
K_XFER_SOCKET = 44  # ... to another socket
K_CMDQ_LAYOUT = 45  # LAYOUT_*: which cmdq fields share a cache line
K_LOAD_PRIORITY = 46  # LOAD_*: does a plain load give its CPU the holder's priority (holder-first)
K_LINE_HOLD_PPM = 47  # holder-first: chance (ppm) that the holder's next access beats waiting requesters
K_LINE_HOME = 48  # HOME_*: where the cmdq lines' memory (their home node) sits
K_HOME_DIE = 50  # line_home: the die whose memory homes the lines (C_DIE numbering; -1 with near)
K_HOME_SOCKET = 51  # ... and its socket (C_SOCKET numbering)
K_SCAN_WAITERS = 49  # holder-first: waiters from which an arbitration looks up the owner's cluster CPU
# by CPU (a speed choice, set by build_memory: runner.CLUSTER_SCAN_WAITERS clusters' worth)
K_NF = 52

# ----------------------------------------------------------------------------- global counters
G_OPS_STARTED = 0
G_OPS_DONE = 1
G_CMDS = 2  # commands written into queues by software
G_CMDS_DONE = 3
G_SYNCS = 4
G_HW_SYNCS = 5
G_CAS = 6
G_CAS_FAIL = 7
G_EVENTS = 8
G_REC_CMDS = 9  # command records written
G_REC_OPS = 10
G_NOW = 11
G_LAT_SUM = 12  # op latency sum (ps)
G_QW_SUM = 13  # queue wait sum (ps)
G_LAT_MAX = 14
G_QW_MAX = 15
G_NEED_CPU = 16  # CPU whose ring ran dry (status NEED_INPUT)
G_WINDOW_OPS = 17
G_FIRST_FINISH = 18  # time the first CPU finished its quota (-1 before)
G_DOORBELLS = 19
G_BUSY_PS = 20
G_SOJOURN_SUM = 21
G_ILLEGAL = 22  # illegal commands reached by a processor
G_FIXUPS = 23  # errors fixed up by the host (guest never saw them)
G_EXITS = 24
G_GUEST_IRQS = 25
G_FIX_LAT_SUM = 26  # IRQ-thread op latency: error -> resume
G_FIX_LAT_MAX = 27
G_FIX_OPS = 28
G_SLW_SUM = 29  # shared_lock wait sum (ps)
G_SLW_MAX = 30
G_SLW_N = 31
G_XLOCKS = 32  # exclusive trylocks that succeeded
G_XTRIES = 33  # exclusive trylock attempts
G_LINE_BYPASS = 34  # holder-first: accesses served ahead of an earlier pending request
# phases of lock-free batches (sums, ps): op_phase_ns
G_PH_RESERVE = 35  # read llq .. cmpxchg succeeded (retries, space check, cmdq->lock exclusive path, slock)
G_PH_WRITE = 36  # writing the entries (atomic-add: and waiting for space)
G_PH_LOCK = 37  # arm_smmu_cmdq_shared_lock
G_PH_OWNER = 38  # set_valid_map, and for the owner: owner_prod wait, gather, valid-map wait
G_PH_PUBLISH = 39  # PROD write and owner_prod release
G_PH_TO_SYNC = 40  # waiting until the SMMU starts the CMD_SYNC
G_PH_SYNC = 41  # the CMD_SYNC's service and its observation (MSI / poll)
G_PH_UNLOCK = 42  # shared_tryunlock (and the llq.cons write of the last holder)
# the event loop's limits while it runs, for a CPU that takes its own next step without returning to it (sched.next_is)
G_T_LIMIT = 43  # no step after this time
G_EV_LEFT = 44  # events the loop may still run in this call
G_NF = 48

# ----------------------------------------------------------------------------- records
# per command
R_OP = 0
R_CPU = 1
R_QUEUE = 2
R_SLOT = 3
R_OPCODE = 4
R_ISSUE = 5
R_RESERVED = 6
R_WRITTEN = 7
R_PUBLISH = 8
R_CSTART = 9
R_COMPLETE = 10
R_RETRIES = 11
R_ILL = 12  # 1 if the command raised ILL on its queue
R_NF = 13
# per op
O_ID = 0
O_CPU = 1
O_QUEUE = 2
O_READY = 3
O_COMPLETE = 4
O_SYNC_COMPLETE = 5
O_CMDS = 6
O_BATCHES = 7
O_RETRIES = 8
O_NF = 9

# ----------------------------------------------------------------------------- run status
ST_DONE = 0
ST_NEED_INPUT = 1
ST_TIME_LIMIT = 2
ST_EVENT_LIMIT = 3

OPCODE_SYNC = 0x46

# ----------------------------------------------------------------------------- queue slots (pool rows)
SL_SVC = 0  # service time of the command in the slot (ps)
SL_OPC = 1  # opcode
SL_REC = 2  # command record index, -1 if not recorded
SL_PUB = 3  # time the PROD covering it landed
SL_CPU = 4  # CPU waiting for this CMD_SYNC, -1 if none
SL_AOP = 5  # asynchronous (direct) op ending here: its op id, else -1
SL_ACPU = 6
SL_AREADY = 7
SL_VALID = 8  # 1 + the counter value whose valid bit is set in this slot (a lap stamp; 0: never set)
SL_ANCMD = 9
SL_FLAGS = 10  # CMD_* flags (CMD_ILLEGAL)
SL_NF = 11  # every field but SL_VALID is written before it is read: slots start as zeros

# ----------------------------------------------------------------------------- flat memory header
# The compiled code sees one int64 array M. Its first words are the offsets and sizes of the
# sections below (see cmdqv_lab.engine.mem); Python keeps numpy views of each section.
H_CS = 0  # CPU state, rows of C_NF
H_QS = 1  # queue state, rows of Q_NF
H_PS = 2  # processor state, rows of P_NF
H_LS = 3  # cache lines, rows of L_NF
H_G = 4  # global counters (G_NF)
H_K = 5  # costs (K_NF)
H_TREE = 6  # tournament tree (2 * leaves)
H_LEAVES = 7
H_PQ = 8  # processor -> queue lists, rows of H_PQW
H_PQW = 9
H_SL = 10  # slot pool, rows of SL_NF
H_RC = 11  # command records, rows of R_NF
H_RC_CAP = 12
H_RO = 13  # op records, rows of O_NF
H_RO_CAP = 14
H_FIFO = 15  # spinlock FIFO per queue, rows of H_NCPU
H_HLAT = 16  # op latency histogram
H_HQW = 17  # queue wait histogram
H_ROP = 18  # input ring of ops per CPU: (time, n_steps)
H_ROP_N = 19
H_RB = 20  # input ring of steps per CPU: (kind, a, b, c)
H_RB_N = 21
H_RCM = 22  # input ring of commands per CPU: (opcode, service ps, flags)
H_RCM_N = 23
H_NCPU = 24
H_NPROC = 25
H_NQ = 26
H_LOCKS = 27  # FIFO mutexes: rows of (holder, head, tail)
H_NLOCKS = 28
H_LFIFO = 29  # waiters of each lock, rows of H_NCPU
H_HFIX = 30  # fix-up latency histogram
H_HSLW = 31  # shared-lock wait histogram
H_WORDS = 32

L_HOLDER = 0
L_HEAD = 1
L_TAIL = 2
LOCK_NF = 3
