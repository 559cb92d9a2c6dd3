import { ApiTokenView } from './api-tokens/api-token.entity';
import { NbdLeaseView } from './nbd-leases/nbd-lease.entity';
import { QemuNbdProcessView } from './qemu-nbd-processes/qemu-nbd-process.entity';

/** Every read-model entity the hub's DataSource knows. */
export const READ_MODEL_ENTITIES: Function[] = [ApiTokenView, NbdLeaseView, QemuNbdProcessView];
