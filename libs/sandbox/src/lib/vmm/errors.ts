/** What went wrong in the VMM driver layer. One code per failure the Sandbox layer may want to tell apart. */
export type VmmErrorCode =
  /** KVM is unusable and the configuration does not allow TCG. */
  | 'KVM_UNAVAILABLE'
  /** A VM spec, id, directory, uid range or limit is invalid (nothing was started). */
  | 'INVALID_SPEC'
  /** A unix socket path would exceed the 107 bytes a `sockaddr_un` holds. */
  | 'SOCKET_PATH_TOO_LONG'
  /** QEMU would not be able to read a file it opens by path (kernel, initrd, firmware) as the VM's uid. */
  | 'IMAGE_NOT_READABLE'
  /** Every uid of the configured range is in use. */
  | 'UID_RANGE_EXHAUSTED'
  /** Creating, limiting or removing the VM's host cgroup failed. */
  | 'CGROUP_FAILED'
  /** QEMU could not be started, or exited before it was up. */
  | 'LAUNCH_FAILED'
  /** A live QEMU already runs in that VM directory. */
  | 'VM_ALREADY_RUNNING'
  /** A process did not disappear after SIGKILL within the deadline. */
  | 'KILL_TIMEOUT'
  /** No QMP greeting on the socket before the deadline. */
  | 'QMP_CONNECT_TIMEOUT'
  /** QEMU sent something that is not QMP (bad JSON, an over-long line, an unexpected message). */
  | 'QMP_PROTOCOL'
  /** The QMP connection is closed (QEMU exited, or close() was called). */
  | 'QMP_CLOSED'
  /** A QMP command got no answer within its timeout. */
  | 'QMP_TIMEOUT'
  /** QEMU answered a QMP command with an error. */
  | 'QMP_COMMAND';

export class VmmError extends Error {
  constructor(
    readonly code: VmmErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'VmmError';
  }
}

/** KVM cannot run our guests here and TCG is not allowed: `kvmReason` says why KVM is unusable. */
export class AcceleratorUnavailableError extends VmmError {
  constructor(readonly kvmReason: string) {
    super('KVM_UNAVAILABLE', `KVM is unusable (${kvmReason}) and TCG is not allowed (allowTcg is false)`);
    this.name = 'AcceleratorUnavailableError';
  }
}

/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpCommandError extends VmmError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super('QMP_COMMAND', `QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpCommandError';
  }
}
