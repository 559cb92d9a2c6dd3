import { EventStore1763769600000 } from './1763769600000-event-store';
import { ApiTokens1763769700000 } from './1763769700000-api-tokens';
import { EventStoreAppendFunction1763769800000 } from './1763769800000-event-store-append-function';
import { NbdReadModels1763769900000 } from './1763769900000-nbd-read-models';
import { RepositoriesAndChains1763770000000 } from './1763770000000-repositories-and-chains';
import { Agents1763770100000 } from './1763770100000-agents';
import { BackupJobs1763770200000 } from './1763770200000-backup-jobs';
import { RestoreMounts1763770300000 } from './1763770300000-restore-mounts';
import { RestoreMountIntegrity1763770460000 } from './1763770460000-restore-mount-integrity';
import { RestorePointsIntegrity1763770470000 } from './1763770470000-restore-points-integrity';
import { ProtectionReport1763770610000 } from './1763770610000-protection-report';
import { Policies1763770620000 } from './1763770620000-policies';
import { EventStoreGroupCommit1763770650000 } from './1763770650000-event-store-group-commit';
import { RestorePointsConsistency1763770711000 } from './1763770711000-restore-points-consistency';
import { PointExports1763770800000 } from './1763770800000-point-exports';
import { RestorePointsConfiguration1763770720000 } from './1763770720000-restore-points-configuration';
import { Restores1763770900000 } from './1763770900000-restores';
import { ProtectionDrills1763770910000 } from './1763770910000-protection-drills';
import { PolicyDrills1763771000000 } from './1763771000000-policy-drills';
import { TokenRoles1763771100000 } from './1763771100000-token-roles';
import { EventSearchIndexes1763771200000 } from './1763771200000-event-search-indexes';
import { Tenants1763771300000 } from './1763771300000-tenants';
import { ImmutableRepositories1763771400000 } from './1763771400000-immutable-repositories';
import { Sync1763771500000 } from './1763771500000-sync';
import { EncryptedRepositories1763771600000 } from './1763771600000-encrypted-repositories';
import { VmPowerState1763771700000 } from './1763771700000-vm-power-state';

/** Every migration, in order; the list is explicit so compiled and ts-jest runs load the same set. */
export const MIGRATIONS = [EventStore1763769600000, ApiTokens1763769700000, EventStoreAppendFunction1763769800000, NbdReadModels1763769900000, RepositoriesAndChains1763770000000, Agents1763770100000, BackupJobs1763770200000, RestoreMounts1763770300000, RestoreMountIntegrity1763770460000, RestorePointsIntegrity1763770470000, ProtectionReport1763770610000, Policies1763770620000, EventStoreGroupCommit1763770650000, RestorePointsConsistency1763770711000, RestorePointsConfiguration1763770720000, PointExports1763770800000, Restores1763770900000, ProtectionDrills1763770910000, PolicyDrills1763771000000, TokenRoles1763771100000, EventSearchIndexes1763771200000, Tenants1763771300000, ImmutableRepositories1763771400000, Sync1763771500000, EncryptedRepositories1763771600000, VmPowerState1763771700000];
