import { Type } from '@nestjs/common';

export const restoreFeature: { controllers: Type[]; providers: Type[]; projectors: Type[] } = { controllers: [], providers: [], projectors: [] };
