// engine/cluster: BigDL's parameter manager (slices, wire encodings, reduce-scatter /
// all-gather per iteration), a helper that runs N workers in one process, and the cluster
// job around them: Drizzle's group scheduler, the driver, the worker, the control protocol,
// the rendezvous (a TCP or WebRTC mesh; the driver relays WebRTC signalling), local / cluster
// launch and the Slurm / torchrun environment.
export { sliceRange, sliceRanges, sliceOwner, sliceView, sliceChunks } from './slices.js';
export type { FlatRange, SliceRange } from './slices.js';
export {
  encodeSlice, decodeSlice, roundTrip, wireDtype, wireFormatOf, bytesPerValue, payloadBytes, isWireFormat, wireFormats, WireFormatError,
} from './wire-codec.js';
export type { WireFormat } from './wire-codec.js';
export { ParameterManager, IterationAbortedError, ProtocolError, DEFAULT_CHUNK_ELEMENTS, STATUS_SLICE_BASE, firstNonFinite } from './parameter-manager.js';
export type { ParameterManagerOptions, FinishOptions, IterationReport, IterationStatus } from './parameter-manager.js';
export { runLocalCluster, Replica, LocalClusterError, layerParameterRanges } from './local-cluster.js';
export type { LocalClusterOptions, LocalClusterResult } from './local-cluster.js';
// Scheduling, driver, worker, launch (DESIGN.md §5, §7).
export { planLaunches, LaunchScheduler, isScheduleMode, scheduleModes } from './scheduler.js';
export type { ScheduleMode, PlanOptions, PlannedLaunch } from './scheduler.js';
export { Driver, ClusterJobError } from './driver.js';
export type { DriverJob, DriverOptions, DriverResult, LaunchReport, WorkerDescription, FailureKind } from './driver.js';
export { runWorker, JobAbortedError, RankLostError } from './worker.js';
export type { WorkerOptions, WorkerResult } from './worker.js';
export { ControlSlice, ControlProtocolError, PROTOCOL_NAME, workerView } from './protocol.js';
export type { JobSpec, DataSpec, LaunchMessage, DoneMessage, ReadyMessage, SnapshotHeader, ResumeHeader } from './protocol.js';
export { loadJobData, buildJobModel, seedDropout } from './job.js';
export type { JobData } from './job.js';
export { runInProcessJob, InProcessJobError } from './inproc.js';
export type { InProcessJobOptions, InProcessJobResult } from './inproc.js';
export { RendezvousServer, RendezvousError, joinJob, parseHostPort, formatHostPort, isMeshTransport } from './rendezvous.js';
export type { RendezvousOptions, JoinOptions, Joined, JoinedWorker, HostPort, Gathered, MeshTransport } from './rendezvous.js';
export { SignalRelay, LineSignalling, MAX_SIGNAL_BYTES } from './rendezvous-signalling.js';
export type { SignalStats, SignalRefusal } from './rendezvous-signalling.js';
export { launchLocal, driverMain, workerMain, clusterMain, parseWorkerList, parseShares, readSecret, SECRET_ENV } from './launch.js';
export type { LocalLaunchOptions, LocalLaunchResult, JobOptions, MeshChoice } from './launch.js';
export { clusterEnv, firstSlurmHost, ClusterEnvError, DEFAULT_DRIVER_PORT } from './env.js';
export type { ClusterEnv } from './env.js';
