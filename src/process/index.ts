export { AdoptedProcessHandle, ChildProcessHandle, exitsWithin, terminateProcess, type ProcessHandle, type SpawnChildOptions } from './child-process';
export { decodeWaitStatus, isListeningOn, isListeningOnUnixSocket, isRunningState, processesWithArgument, readCmdline, readProcStat, type ExitStatus, type ProcStat } from './proc';
export { describeFailure, ProcessError, runProcess, type ProcessFailure, type ProcessResult, type RunProcessOptions } from './run-process';
export { readLogTail } from './log-tail';
export { CommandSession, type Taken } from './command-session';
export { mapAtOnce } from './map-at-once';
export { repeatAfter } from './repeat';
