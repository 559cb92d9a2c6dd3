import { LiveController } from './live.controller';

export const liveFeature = {
  controllers: [LiveController],
  providers: [],
};
