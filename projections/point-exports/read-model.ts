import { ReadModel } from '../read-model';
import { GetPointExportHandler, ListPointExportsHandler, OpenPointExportsHandler, OpenPointExportsByHandler, OthersOpenPointExportsHandler } from './point-exports.queries';
import { PointExportsProjector } from './point-exports.projector';

export const pointExportsReadModel: ReadModel = {
  projector: PointExportsProjector,
  queryHandlers: [ListPointExportsHandler, GetPointExportHandler, OpenPointExportsHandler, OpenPointExportsByHandler, OthersOpenPointExportsHandler],
};
