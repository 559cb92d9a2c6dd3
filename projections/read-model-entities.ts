import { AgentView, VmOwnershipConflictView, VmView } from './agents/agent.entity';
import { ApiTokenView } from './api-tokens/api-token.entity';
import { BackupJobView, BackupOutcomeView } from './backup-jobs/backup-job.entity';
import { NbdLeaseView } from './nbd-leases/nbd-lease.entity';
import { QemuNbdProcessView } from './qemu-nbd-processes/qemu-nbd-process.entity';
import { RepositoryView } from './repositories/repository.entity';
import { RestorePointView } from './restore-points/restore-point.entity';
import { RepositoryPointBytesView, RepositoryStoredBytesView, RepositoryUsageView } from './repository-usage/repository-usage.entity';
import { RestoreMountView } from './restore-mounts/restore-mount.entity';
import { RestorePointIntegrityView } from './restore-mounts/restore-point-integrity.entity';
import { PolicyView } from './policies/policy.entity';
import { RestoreView } from './restores/restore.entity';
import { PointExportView } from './point-exports/point-export.entity';
import { TenancyView } from './tenancy/tenancy.entity';

/** Every read-model entity the hub's DataSource knows. */
export const READ_MODEL_ENTITIES: Function[] = [ApiTokenView, NbdLeaseView, QemuNbdProcessView, RepositoryView, RestorePointView, RepositoryPointBytesView, RepositoryUsageView, RepositoryStoredBytesView, AgentView, VmView, VmOwnershipConflictView, BackupJobView, BackupOutcomeView, RestoreMountView, RestorePointIntegrityView, PolicyView, RestoreView, PointExportView, TenancyView];
