export { LibvirtSource, type LibvirtSourceOptions, type LiveTimings } from './libvirt-source';
export { backupXml, checkpointXml, decideLive, parseDomainXml, skipReason, type DomainDisk, type DomainInfo } from './domain-xml';
