import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import type { VmConfiguration } from '../../wire/vm-configuration';
import { configurationFileOf, configurationFileRef, readConfigurationFile, writeConfigurationFile } from './configuration-files';

const config: VmConfiguration = {
  schemaVersion: 1,
  kind: 'libvirt',
  domainXml: "<domain type='qemu'><name>web</name><uuid>356048d8-23bd-48b0-8e80-080f6e097414</uuid></domain>",
  nvram: Buffer.from('uefi variables').toString('base64'),
  tpm: null,
  capturedAt: '2026-11-23T10:00:00.000Z',
};

describe('configuration files beside the manifests', () => {
  let root: string;
  beforeEach(async () => {
    root = await makeTempDir('configuration-files');
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  it('writes, finds and reads back a configuration, naming what it holds', async () => {
    const file = configurationFileOf('vm1', 'rp-1');
    expect(file).toBe('vm1/manifests/rp-1.config.json');
    const ref = await writeConfigurationFile(root, file, config);
    expect(ref).toMatchObject({ file, nvram: true, tpm: false });
    expect(ref.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await configurationFileRef(root, file)).toEqual(ref);
    expect(await readConfigurationFile(root, ref)).toEqual(config);
    expect(await configurationFileRef(root, configurationFileOf('vm1', 'rp-2'))).toBeNull();
  });

  it('refuses a file changed since the manifest named it, and one that is not a configuration', async () => {
    const file = configurationFileOf('vm1', 'rp-1');
    const ref = await writeConfigurationFile(root, file, config);
    await fs.writeFile(join(root, file), JSON.stringify({ ...config, domainXml: config.domainXml.replace('web', 'evil') }));
    await expect(readConfigurationFile(root, ref)).rejects.toThrow(/does not match the SHA-256/);
    await fs.writeFile(join(root, file), JSON.stringify({ ...config, domainXml: 'not xml' }));
    await expect(configurationFileRef(root, file)).rejects.toThrow(/is not a configuration: domainXml must be a <domain> document/);
    await fs.writeFile(join(root, file), JSON.stringify({ ...config, tpm: [{ name: '../../etc/passwd', data: '' }] }));
    await expect(configurationFileRef(root, file)).rejects.toThrow(/not a relative path of plain names/);
  });
});
